// Unit tests of the SDK against a scripted fake agent (test/fake-agent.mjs): the wire format of
// docs/protocol.md, ids, events, errors, timeouts and "never resend a signing request".
// Run: npm run build && node --experimental-websocket --test test/unit.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect, KysoError, isKysoError, localNetworkAccess, normalizeDigest } from '../dist/index.js';
import { startFakeAgent, defaultHandler, freePort, helloResult } from './fake-agent.mjs';

if (typeof WebSocket !== 'function') {
  throw new Error('run with node --experimental-websocket (Node 20) or Node >= 22');
}

const sha256 = (s) => createHash('sha256').update(s).digest();
const err = (code, extra = {}) => ({
  code,
  message: { vi: `vi:${code}`, en: `en:${code}` },
  retriable: true,
  ...extra,
});

/** Runs fn with a fake agent and a connected client; always cleans up. */
async function withAgent(handler, fn, connectOptions = {}) {
  const agent = await startFakeAgent({
    handler: (msg, conn) => (msg.method === 'hello' ? defaultHandler(msg, conn) : handler(msg, conn)),
  });
  const client = await connect({ ports: [agent.port], ...connectOptions });
  try {
    await fn(client, agent);
  } finally {
    client.close();
    await agent.close();
  }
}

test('connect_triesDefaultThenFallbackPorts_usesFirstThatAnswers', async () => {
  const [dead1, dead2] = [await freePort(), await freePort()];
  const agent = await startFakeAgent();
  try {
    const client = await connect({ ports: [dead1, dead2, agent.port] });
    assert.equal(client.port, agent.port);
    assert.equal(client.url, `ws://127.0.0.1:${agent.port}/`);
    assert.equal(client.info.agent, 'kyso-agent');
    const hello = agent.requests[0];
    assert.equal(hello.method, 'hello');
    assert.deepEqual(hello.params.protocols, [1]);
    assert.equal(hello.params.language, 'vi');
    assert.match(hello.params.client, /^kyso-agent-client\//);
    client.close();
  } finally {
    await agent.close();
  }
});

test('connect_noAgent_rejectsAgentNotFound', async () => {
  const ports = [await freePort(), await freePort()];
  await assert.rejects(connect({ ports }), (e) => {
    assert.ok(e instanceof KysoError);
    assert.equal(e.code, 'AGENT_NOT_FOUND');
    assert.match(e.messageVi, /Kyso/);
    return true;
  });
});

test('connect_agentRefusesUpgrade_rejectsAgentRefused', async () => {
  const agent = await startFakeAgent({ refuse: true });
  try {
    await assert.rejects(connect({ ports: [agent.port] }), (e) => e.code === 'AGENT_REFUSED');
  } finally {
    await agent.close();
  }
});

/**
 * Runs fn as if in a browser page at `href` whose Permissions API answers `states` (a name the
 * browser does not know is left out: query rejects with TypeError, as Chromium does). The
 * globals are restored afterwards.
 */
async function asBrowserPage({ href, states = {}, secure = true, framed = false, frameAllows }, fn) {
  const url = new URL(href);
  const queried = [];
  const permissions = {
    async query({ name }) {
      queried.push(name);
      if (!(name in states)) throw new TypeError(`The provided value '${name}' is not a valid enum value of type PermissionName.`);
      return { state: states[name] };
    },
  };
  const top = framed ? {} : undefined;
  const fake = {
    location: { protocol: url.protocol, hostname: url.hostname },
    navigator: { permissions },
    isSecureContext: secure,
    document: frameAllows === undefined ? {} : { permissionsPolicy: { allowsFeature: () => frameAllows } },
  };
  const saved = {};
  for (const k of [...Object.keys(fake), 'top', 'self']) saved[k] = Object.getOwnPropertyDescriptor(globalThis, k);
  const define = (k, value) => Object.defineProperty(globalThis, k, { value, configurable: true, writable: true });
  for (const [k, v] of Object.entries(fake)) define(k, v);
  define('self', globalThis);
  define('top', top ?? globalThis);
  try {
    return await fn(queried);
  } finally {
    for (const [k, d] of Object.entries(saved)) {
      if (d) Object.defineProperty(globalThis, k, d);
      else delete globalThis[k];
    }
  }
}

const lnaStates = { 'loopback-network': 'prompt', 'local-network-access': 'prompt' };

test('connect_publicPageWithoutPermission_rejectsLocalNetworkPromptNotAgentNotFound', async () => {
  const ports = [await freePort()];
  await asBrowserPage({ href: 'https://hocba.example.edu.vn/lop/12A1', states: lnaStates }, async (queried) => {
    let prompted;
    await assert.rejects(connect({ ports, onLocalNetworkPrompt: (lna) => (prompted = lna) }), (e) => {
      assert.ok(isKysoError(e, 'LOCAL_NETWORK_PROMPT'));
      assert.match(e.messageVi, /Cho phép/);
      assert.match(e.messageEn, /Allow/);
      assert.equal(e.data.state, 'prompt');
      assert.equal(e.data.permission, 'loopback-network');
      assert.match(e.detail, /Local Network Access/);
      return true;
    });
    assert.equal(prompted?.state, 'prompt', 'onLocalNetworkPrompt before the first attempt');
    assert.equal(queried[0], 'loopback-network', 'the loopback permission is asked first');
  });
});

test('connect_permissionDenied_rejectsLocalNetworkDeniedSayingSiteSettingsAndIT', async () => {
  const ports = [await freePort()];
  await asBrowserPage({ href: 'https://hocba.example.edu.vn/', states: { 'loopback-network': 'denied' } }, async () => {
    await assert.rejects(connect({ ports }), (e) => {
      assert.ok(isKysoError(e, 'LOCAL_NETWORK_DENIED'));
      assert.match(e.messageVi, /Cài đặt trang web/);
      assert.match(e.messageVi, /CNTT/);
      assert.match(e.messageEn, /Site settings/);
      return true;
    });
  });
});

test('connect_olderChromiumKnowsOnlyLocalNetworkAccess_usesIt', async () => {
  const ports = [await freePort()];
  await asBrowserPage({ href: 'https://hocba.example.edu.vn/', states: { 'local-network-access': 'denied' } }, async (queried) => {
    await assert.rejects(connect({ ports }), (e) => e.code === 'LOCAL_NETWORK_DENIED' && e.data.permission === 'local-network-access');
    assert.ok(queried.includes('loopback-network') && queried.includes('local-network-access'));
  });
});

test('connect_frameWithoutAllowAttribute_rejectsLocalNetworkFrame', async () => {
  const ports = [await freePort()];
  await asBrowserPage(
    { href: 'https://hocba.example.edu.vn/', states: { 'loopback-network': 'denied' }, framed: true, frameAllows: false },
    async () => {
      await assert.rejects(connect({ ports }), (e) => {
        assert.ok(isKysoError(e, 'LOCAL_NETWORK_FRAME'));
        assert.match(e.messageEn, /allow="local-network-access; loopback-network"/);
        assert.equal(e.data.embedded, true);
        assert.equal(e.data.frameAllowed, false);
        return true;
      });
    },
  );
});

test('connect_plainHttpPublicPage_rejectsLocalNetworkInsecure', async () => {
  const ports = [await freePort()];
  await asBrowserPage({ href: 'http://hocba.example.edu.vn/', states: { 'loopback-network': 'granted' }, secure: false }, async () => {
    await assert.rejects(connect({ ports }), (e) => isKysoError(e, 'LOCAL_NETWORK_INSECURE') && /https:\/\//.test(e.messageVi));
  });
});

test('connect_permissionGrantedButNothingListens_rejectsAgentNotFound', async () => {
  const ports = [await freePort()];
  await asBrowserPage({ href: 'https://hocba.example.edu.vn/', states: { 'loopback-network': 'granted' } }, async () => {
    await assert.rejects(connect({ ports }), (e) => e.code === 'AGENT_NOT_FOUND' && e.data.state === 'granted');
  });
});

test('connect_permissionGrantedAgentRefusesOrigin_rejectsAgentRefusedSayingAskIT', async () => {
  const agent = await startFakeAgent({ refuse: true });
  try {
    await asBrowserPage({ href: 'https://hocba.example.edu.vn/', states: { 'loopback-network': 'granted' } }, async () => {
      await assert.rejects(connect({ ports: [agent.port] }), (e) => {
        assert.ok(isKysoError(e, 'AGENT_REFUSED'));
        assert.match(e.messageVi, /CNTT/);
        assert.match(e.messageEn, /allow-list/);
        return true;
      });
    });
  } finally {
    await agent.close();
  }
});

test('connect_promptButAgentAnswers_connects', async () => {
  const agent = await startFakeAgent();
  try {
    await asBrowserPage({ href: 'https://hocba.example.edu.vn/', states: lnaStates }, async () => {
      const client = await connect({ ports: [agent.port] });
      assert.equal(client.info.agent, 'kyso-agent');
      client.close();
    });
  } finally {
    await agent.close();
  }
});

test('localNetworkAccess_pageOnLoopbackOrWithoutLna_notGated', async () => {
  await asBrowserPage({ href: 'http://127.0.0.1:19600/', states: lnaStates, secure: true }, async (queried) => {
    assert.equal((await localNetworkAccess()).state, 'not-needed');
    assert.deepEqual(queried, [], 'a loopback page asks nothing');
  });
  await asBrowserPage({ href: 'http://localhost:5173/', states: {}, secure: true }, async () => {
    assert.equal((await localNetworkAccess()).state, 'not-needed');
  });
  await asBrowserPage({ href: 'https://hocba.example.edu.vn/', states: {} }, async () => {
    assert.equal((await localNetworkAccess()).state, 'unsupported', 'Firefox/Safari: no LNA names');
  });
  assert.equal((await localNetworkAccess()).state, 'unsupported', 'Node: no page');
});

test('connect_notAKysoAgent_rejectsProtocolError', async () => {
  const agent = await startFakeAgent({
    handler: (msg, conn) => conn.send({ id: msg.id, result: { agent: 'something-else', protocol: 1 } }),
  });
  try {
    await assert.rejects(connect({ ports: [agent.port] }), (e) => e.code === 'PROTOCOL_ERROR');
  } finally {
    await agent.close();
  }
});

test('pair_showsCodeFromEvent_resolvesWhenUserConfirms', async () => {
  await withAgent(
    (msg, conn) => {
      assert.equal(msg.method, 'pair');
      conn.send({ event: 'pair.code', id: msg.id, params: { code: '482 915', expiresIn: 120 } });
      setTimeout(() => conn.send({ id: msg.id, result: { paired: true, origin: 'http://127.0.0.1:19600' } }), 20);
    },
    async (client) => {
      const codes = [];
      const seen = [];
      client.on('pair.code', (e) => seen.push(e.code));
      const result = await client.pair({ onCode: (c) => codes.push(c) });
      assert.deepEqual(codes, [{ code: '482 915', expiresIn: 120 }]);
      assert.deepEqual(seen, ['482 915']);
      assert.deepEqual(result, { paired: true, origin: 'http://127.0.0.1:19600', code: '482 915' });
      assert.equal(client.info.paired, true);
    },
  );
});

test('pair_userCancels_rejectsUserCancelledWithBothMessages', async () => {
  await withAgent(
    (msg, conn) => conn.send({ id: msg.id, error: err('USER_CANCELLED') }),
    async (client) => {
      await assert.rejects(client.pair(), (e) => {
        assert.ok(isKysoError(e, 'USER_CANCELLED'));
        assert.equal(e.messageVi, 'vi:USER_CANCELLED');
        assert.equal(e.messageEn, 'en:USER_CANCELLED');
        assert.equal(e.retriable, true);
        return true;
      });
    },
  );
});

test('pair_tooSoonAfterCancel_rejectsPairCooldownSayingWaitAndRetry', async () => {
  // An agent that sends no messages of its own: the SDK's fallback must say to wait, not to IT.
  await withAgent(
    (msg, conn) =>
      conn.send({ id: msg.id, error: { code: 'PAIR_COOLDOWN', retriable: true, detail: 'pairing again in 5 s' } }),
    async (client) => {
      await assert.rejects(client.pair(), (e) => {
        assert.ok(isKysoError(e, 'PAIR_COOLDOWN'));
        assert.match(e.messageVi, /đợi/);
        assert.match(e.messageVi, /Ghép nối/);
        assert.match(e.messageEn, /[Ww]ait/);
        assert.match(e.messageEn, /again/);
        assert.doesNotMatch(e.messageEn, /PAIR_COOLDOWN/);
        return true;
      });
    },
  );
});

test('listCredentials_sendsOnlyGivenFilters', async () => {
  const cred = { id: 'a'.repeat(64), certificate: { commonName: 'Nguyễn Thị Ánh' }, roles: ['teacher'] };
  await withAgent(
    (msg, conn) => conn.send({ id: msg.id, result: { credentials: [cred] } }),
    async (client, agent) => {
      const list = await client.listCredentials({ role: 'teacher', validNow: true });
      assert.deepEqual(list, [cred]);
      const req = agent.requests.at(-1);
      assert.equal(req.method, 'credentials.list');
      assert.deepEqual(req.params, { role: 'teacher', validNow: true });
      await assert.rejects(client.listCredentials({ role: 'student' }), (e) => e.code === 'BAD_REQUEST');
    },
  );
});

test('sign_hexDigest_sentAsBase64WithAlgorithmAndOptions', async () => {
  const digest = sha256('Học bạ - Nguyễn Văn A');
  await withAgent(
    (msg, conn) =>
      conn.send({
        id: msg.id,
        result: {
          signature: 'c2ln',
          algorithm: 'rsa-pss-sha256',
          credentialId: 'b'.repeat(64),
          certificate: 'Y2VydA==',
          chain: [],
          hash: digest.toString('hex'),
        },
      }),
    async (client, agent) => {
      const r = await client.sign(
        { hash: digest.toString('hex'), title: 'Học bạ - Nguyễn Văn A', key: 'x' },
        { role: 'teacher', credentialId: 'b'.repeat(64), algorithm: 'rsa-pss-sha256' },
      );
      assert.equal(r.signature, 'c2ln');
      const req = agent.requests.at(-1);
      assert.equal(req.method, 'sign');
      assert.equal(typeof req.id, 'number');
      assert.deepEqual(req.params, {
        role: 'teacher',
        credentialId: 'b'.repeat(64),
        algorithm: 'rsa-pss-sha256',
        item: { type: 'hash', hash: digest.toString('base64'), hashAlgorithm: 'sha256', title: 'Học bạ - Nguyễn Văn A' },
      });
    },
  );
});

test('sign_agentError_rejectsTypedErrorWithAgentMessages', async () => {
  await withAgent(
    (msg, conn) => conn.send({ id: msg.id, error: err('PIN_LOCKED', { retriable: false, detail: 'C_Login' }) }),
    async (client) => {
      await assert.rejects(client.sign({ hash: new Uint8Array(32), title: 't' }, { role: 'seal' }), (e) => {
        assert.ok(e instanceof KysoError);
        assert.equal(e.code, 'PIN_LOCKED');
        assert.equal(e.messageVi, 'vi:PIN_LOCKED');
        assert.equal(e.retriable, false);
        assert.equal(e.detail, 'C_Login');
        return true;
      });
    },
  );
});

test('sign_badDigestOrRole_rejectsLocallyWithoutSending', async () => {
  await withAgent(
    () => assert.fail('nothing may be sent'),
    async (client, agent) => {
      await assert.rejects(client.sign({ hash: new Uint8Array(20), title: 't' }, { role: 'teacher' }), (e) => e.code === 'DIGEST_INVALID');
      await assert.rejects(client.sign({ hash: 'zz', title: 't' }, { role: 'teacher' }), (e) => e.code === 'DIGEST_INVALID');
      await assert.rejects(client.sign({ hash: new Uint8Array(32), title: '' }, { role: 'teacher' }), (e) => e.code === 'BAD_REQUEST');
      await assert.rejects(client.sign({ hash: new Uint8Array(32), title: 't' }, { role: 'admin' }), (e) => e.code === 'BAD_REQUEST');
      assert.equal(agent.requests.length, 1); // hello only
    },
  );
});

test('sign_connectionDropsBeforeAnswer_connectionLostAndNeverResent', async () => {
  await withAgent(
    (msg, conn) => setTimeout(() => conn.drop(), 20),
    async (client, agent) => {
      const closes = [];
      client.on('close', (e) => closes.push(e));
      await assert.rejects(client.sign({ hash: new Uint8Array(32), title: 't' }, { role: 'teacher' }), (e) => {
        assert.equal(e.code, 'CONNECTION_LOST');
        assert.match(e.detail, /not resent/);
        return true;
      });
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(agent.requests.filter((m) => m.method === 'sign').length, 1);
      assert.equal(closes.length, 1);
      assert.equal(client.connected, false);
      await assert.rejects(client.listCredentials(), (e) => e.code === 'NOT_CONNECTED');
    },
  );
});

test('sign_noAnswerInTime_timeoutAndLateAnswerIgnored', async () => {
  await withAgent(
    (msg, conn) => setTimeout(() => conn.send({ id: msg.id, result: { signature: 'late' } }), 150),
    async (client, agent) => {
      await assert.rejects(
        client.sign({ hash: new Uint8Array(32), title: 't' }, { role: 'teacher', timeoutMs: 50 }),
        (e) => e.code === 'TIMEOUT',
      );
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(agent.requests.filter((m) => m.method === 'sign').length, 1);
      assert.equal(client.connected, true);
    },
  );
});

/**
 * A fake batch: one progress event per item (or, when the page sent progressInterval, one
 * coalesced event per 8 items as the agent does by time); items from `failFrom` on fail with
 * TOKEN_REMOVED.
 */
function batchAgent({ failFrom = Infinity, delayMs = 0 } = {}) {
  const state = { items: [], total: 0, cancelled: false };
  return {
    state,
    handler(msg, conn) {
      if (msg.method === 'batch.items') {
        state.items.push(...msg.params.items);
        conn.send({ id: msg.id, result: { received: state.items.length, total: state.total } });
        if (state.items.length === state.total) run(state.batchId, conn);
        return;
      }
      if (msg.method === 'batch.cancel') {
        state.cancelled = true;
        conn.send({ id: msg.id, result: { cancelled: true } });
        return;
      }
      assert.equal(msg.method, 'batch.sign');
      state.batchId = msg.id;
      state.total = msg.params.total ?? msg.params.items.length;
      state.params = msg.params;
      state.items.push(...msg.params.items);
      if (state.items.length === state.total) run(msg.id, conn);
    },
  };
  async function run(id, conn) {
    const results = [];
    let from = 0;
    let failed = [];
    let sigs = [];
    for (let i = 0; i < state.total; i++) {
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      const error = state.cancelled ? err('USER_CANCELLED') : i >= failFrom ? err('TOKEN_REMOVED') : undefined;
      const r = error ? { index: i, ok: false, error } : { index: i, ok: true, signature: `sig${i}` };
      results.push(r);
      if (!state.params.progressInterval) {
        conn.send({ event: 'batch.progress', id, params: { done: i + 1, total: state.total, index: i, ok: r.ok, ...(error ? { error } : {}) } });
        continue;
      }
      if (error) failed.push({ index: i, error });
      else if (state.params.signaturesInEvents) sigs.push({ index: i, signature: r.signature });
      if ((i + 1) % 8 === 0 || i + 1 === state.total) {
        const withSigs = state.params.signaturesInEvents ? { signatures: sigs } : {};
        conn.send({ event: 'batch.progress', id, params: { done: i + 1, total: state.total, index: i, ok: r.ok, from, failed, ...withSigs } });
        from = i + 1;
        failed = [];
        sigs = [];
      }
    }
    // With signaturesInEvents the summary only says which items were signed.
    if (state.params.signaturesInEvents) {
      for (const r of results) delete r.signature;
    }
    const signed = results.filter((r) => r.ok).length;
    conn.send({
      id,
      result: {
        total: state.total, signed, failed: state.total - signed, cancelled: state.cancelled,
        credentialId: 'c'.repeat(64), algorithm: 'rsa-sha256', certificate: 'Y2VydA==', chain: ['Y2E='], results,
      },
    });
  }
}

const classItems = (n) =>
  Array.from({ length: n }, (_, i) => ({ hash: sha256(`student ${i}`), title: `Học bạ - Học sinh ${i + 1}`, key: `uuid-${i}` }));

test('signBatch_coalescedProgress_onProgressOncePerItemInOrderWithErrors', async () => {
  const fake = batchAgent({ failFrom: 35 });
  await withAgent(fake.handler, async (client) => {
    const progress = [];
    const events = [];
    client.on('batch.progress', (e) => events.push(e.index));
    const summary = await client.signBatch(classItems(40), { role: 'principal', onProgress: (e) => progress.push(e) });
    assert.equal(fake.state.params.progressInterval, 50);
    assert.deepEqual(progress.map((e) => e.index), Array.from({ length: 40 }, (_, i) => i));
    assert.deepEqual(progress.map((e) => e.done), Array.from({ length: 40 }, (_, i) => i + 1));
    assert.ok(progress.slice(0, 35).every((e) => e.ok && e.error === undefined));
    assert.ok(progress.slice(35).every((e) => !e.ok && e.error.code === 'TOKEN_REMOVED'));
    assert.equal(progress[39].item.key, 'uuid-39');
    assert.equal(events.length, 40);
    assert.equal(summary.signed, 35);
  });
});

test('signBatch_agentOffersSignaturesInEvents_signaturesFromEventsInProgressAndSummary', async () => {
  const fake = batchAgent({ failFrom: 35 });
  const agent = await startFakeAgent({
    handler: (msg, conn) =>
      msg.method === 'hello'
        ? conn.send({ id: msg.id, result: { ...helloResult, capabilities: { ...helloResult.capabilities, signaturesInEvents: true } } })
        : fake.handler(msg, conn),
  });
  const client = await connect({ ports: [agent.port] });
  try {
    const progress = [];
    const summary = await client.signBatch(classItems(40), { role: 'principal', onProgress: (e) => progress.push(e) });
    assert.equal(fake.state.params.signaturesInEvents, true);
    assert.equal(fake.state.params.progressInterval, 50);
    // Each signed item's signature arrives with its progress and ends up in the summary.
    assert.deepEqual(progress.slice(0, 35).map((e) => e.signature), Array.from({ length: 35 }, (_, i) => `sig${i}`));
    assert.ok(progress.slice(35).every((e) => !e.ok && e.signature === undefined));
    assert.equal(summary.signed, 35);
    assert.deepEqual(summary.results.slice(0, 35).map((r) => r.signature), Array.from({ length: 35 }, (_, i) => `sig${i}`));
    assert.ok(summary.results.slice(35).every((r) => !r.ok && r.error.code === 'TOKEN_REMOVED'));
  } finally {
    client.close();
    await agent.close();
  }
});

test('signBatch_agentWithoutSignaturesInEvents_doesNotAskForThem', async () => {
  const fake = batchAgent();
  await withAgent(fake.handler, async (client) => {
    const summary = await client.signBatch(classItems(10), { role: 'principal' });
    assert.equal(fake.state.params.signaturesInEvents, undefined);
    assert.equal(summary.results[9].signature, 'sig9');
  });
});

test('signBatch_progressIntervalZero_asksForAnEventPerItem', async () => {
  const fake = batchAgent();
  await withAgent(fake.handler, async (client) => {
    const progress = [];
    await client.signBatch(classItems(10), { role: 'principal', progressIntervalMs: 0, onProgress: (e) => progress.push(e) });
    assert.equal(fake.state.params.progressInterval, undefined);
    assert.equal(progress.length, 10);
  });
});

test('signBatch_tokenRemovedMidway_summaryNamesExactlySignedItems', async () => {
  const fake = batchAgent({ failFrom: 35 });
  await withAgent(fake.handler, async (client) => {
    const progress = [];
    const events = [];
    client.on('batch.progress', (e) => events.push(e.index));
    let started;
    const p = client.signBatch(classItems(40), { role: 'principal', onProgress: (e) => progress.push(e), onStart: (id) => (started = id) });
    assert.equal(typeof p.batchId, 'number');
    const summary = await p;
    assert.equal(started, p.batchId);
    assert.equal(summary.batchId, p.batchId);
    assert.equal(progress.length, 40);
    assert.deepEqual(progress.map((e) => e.done), Array.from({ length: 40 }, (_, i) => i + 1));
    assert.equal(progress[39].item.key, 'uuid-39');
    assert.equal(progress[39].error.code, 'TOKEN_REMOVED');
    assert.equal(events.length, 40);
    assert.equal(summary.total, 40);
    assert.equal(summary.signed, 35);
    assert.equal(summary.failed, 5);
    assert.deepEqual(summary.succeeded.map((r) => r.item.key), Array.from({ length: 35 }, (_, i) => `uuid-${i}`));
    assert.deepEqual(summary.failures.map((r) => [r.index, r.error.code]), [35, 36, 37, 38, 39].map((i) => [i, 'TOKEN_REMOVED']));
    assert.equal(summary.results[0].signature, 'sig0');
    assert.equal(summary.certificate, 'Y2VydA==');
    assert.equal(fake.state.params.role, 'principal');
    assert.equal(fake.state.params.total, 40);
  });
});

test('signBatch_largeBatch_splitIntoBatchItemsUnderMessageLimit', async () => {
  const fake = batchAgent();
  await withAgent(
    fake.handler,
    async (client, agent) => {
      const summary = await client.signBatch(classItems(200), { role: 'seal' });
      assert.equal(summary.signed, 200);
      const msgs = agent.requests.filter((m) => m.method.startsWith('batch.'));
      assert.ok(msgs.length > 2, `expected several messages, got ${msgs.length}`);
      assert.equal(msgs[0].method, 'batch.sign');
      assert.equal(msgs[0].params.total, 200);
      for (const m of msgs.slice(1)) {
        assert.equal(m.method, 'batch.items');
        assert.equal(m.params.batchId, msgs[0].id);
      }
      for (const m of msgs) assert.ok(Buffer.byteLength(JSON.stringify(m)) <= 8 * 1024);
      assert.equal(msgs.reduce((n, m) => n + m.params.items.length, 0), 200);
    },
    { maxMessageBytes: 8 * 1024 },
  );
});

test('signBatch_refusedWhileSendingChunks_rejectsWithTheRefusalNotTheChunkError', async () => {
  await withAgent(
    (msg, conn) =>
      msg.method === 'batch.sign'
        ? conn.send({ id: msg.id, error: err('BUSY') })
        : conn.send({ id: msg.id, error: err('BAD_REQUEST', { detail: 'unknown batchId' }) }),
    async (client) => {
      await assert.rejects(client.signBatch(classItems(100), { role: 'principal' }), (e) => e.code === 'BUSY');
    },
    { maxMessageBytes: 4 * 1024 },
  );
});

test('signBatch_cancel_summaryCancelledWithUnsignedItemsFailed', async () => {
  const fake = batchAgent({ delayMs: 5 });
  await withAgent(fake.handler, async (client, agent) => {
    let cancelled;
    const p = client.signBatch(classItems(40), {
      role: 'principal',
      onProgress: (e) => {
        if (e.done === 10) cancelled = client.cancel(p.batchId);
      },
    });
    const summary = await p;
    assert.equal(await cancelled, true);
    assert.equal(summary.cancelled, true);
    assert.ok(summary.signed >= 10 && summary.signed < 40);
    assert.ok(summary.failures.every((f) => f.error.code === 'USER_CANCELLED'));
    assert.deepEqual(agent.requests.find((m) => m.method === 'batch.cancel').params, { batchId: p.batchId });
  });
});

test('signBatch_abortSignal_sendsBatchCancel', async () => {
  const fake = batchAgent({ delayMs: 5 });
  await withAgent(fake.handler, async (client, agent) => {
    const controller = new AbortController();
    const summary = await client.signBatch(classItems(20), {
      role: 'teacher',
      signal: controller.signal,
      onProgress: (e) => e.done === 3 && controller.abort(),
    });
    assert.equal(summary.cancelled, true);
    assert.equal(agent.requests.filter((m) => m.method === 'batch.cancel').length, 1);
  });
});

test('signBatch_refusedBeforeSigning_rejectsWithAgentError', async () => {
  await withAgent(
    (msg, conn) => conn.send({ id: msg.id, error: err('ROLE_NO_CREDENTIAL', { detail: 'seal needs an organization certificate' }) }),
    async (client) => {
      await assert.rejects(client.signBatch(classItems(3), { role: 'seal' }), (e) => e.code === 'ROLE_NO_CREDENTIAL' && /organization/.test(e.detail));
    },
  );
});

test('signBatch_summaryOddResults_everyItemGetsExactlyOneEntryInOrder', async () => {
  await withAgent(
    (msg, conn) =>
      conn.send({
        id: msg.id,
        result: {
          credentialId: 'c'.repeat(64), algorithm: 'rsa-sha256', certificate: 'Y2VydA==', chain: ['Y2E='],
          results: [
            'not an object',
            { index: 2, ok: false, error: err('TOKEN_REMOVED') },
            { index: 0, ok: true, signature: 'sig0' },
            { index: 0, ok: false, error: err('TOKEN_REMOVED') }, // a second entry for 0: ignored
            { index: 1, ok: true }, // "signed" without a signature
            { index: 9, ok: true, signature: 'sig9' }, // no such item
          ],
        },
      }),
    async (client) => {
      const s = await client.signBatch(classItems(4), { role: 'teacher' });
      assert.deepEqual(s.results.map((r) => [r.index, r.item.key, r.ok, r.ok ? r.signature : r.error.code]), [
        [0, 'uuid-0', true, 'sig0'],
        [1, 'uuid-1', false, 'PROTOCOL_ERROR'],
        [2, 'uuid-2', false, 'TOKEN_REMOVED'],
        [3, 'uuid-3', false, 'PROTOCOL_ERROR'],
      ]);
      assert.match(s.results[3].error.detail, /no result for item 3/);
      assert.equal(s.results[2].error.requestId, String(s.batchId));
      assert.deepEqual([s.total, s.signed, s.failed, s.cancelled], [4, 1, 3, false]);
      assert.deepEqual(s.succeeded.map((r) => r.index), [0]);
      assert.deepEqual(s.failures.map((r) => r.index), [1, 2, 3]);
      assert.deepEqual([s.credentialId, s.algorithm, s.certificate, s.chain], ['c'.repeat(64), 'rsa-sha256', 'Y2VydA==', ['Y2E=']]);
    },
  );
  await withAgent(
    (msg, conn) => conn.send({ id: msg.id, result: { algorithm: 'rsa-sha256' } }),
    (client) => assert.rejects(client.signBatch(classItems(1), { role: 'teacher' }), (e) => e.code === 'PROTOCOL_ERROR' && /without results/.test(e.detail)),
  );
});

test('signBatch_connectionLostMidway_reportsProgressSeen', async () => {
  await withAgent(
    (msg, conn) => {
      for (let i = 0; i < 3; i++) conn.send({ event: 'batch.progress', id: msg.id, params: { done: i + 1, total: 5, index: i, ok: true } });
      setTimeout(() => conn.drop(), 20);
    },
    async (client, agent) => {
      await assert.rejects(client.signBatch(classItems(5), { role: 'principal' }), (e) => {
        assert.equal(e.code, 'CONNECTION_LOST');
        assert.deepEqual(e.data.progress.ok, [0, 1, 2]);
        return true;
      });
      assert.equal(agent.requests.filter((m) => m.method === 'batch.sign').length, 1);
    },
  );
});

test('tokenEvents_deliveredToListeners_unknownEventsOnlyToGenericListener', async () => {
  await withAgent(
    (msg, conn) => {
      conn.send({ event: 'token.removed', params: { token: { label: 'Kyso Demo', serial: '42' } } });
      conn.send({ event: 'token.inserted', params: { token: { label: 'Kyso Demo' } } });
      conn.send({ event: 'something.new', params: { x: 1 } });
      conn.send({ id: msg.id, result: { credentials: [] } });
    },
    async (client) => {
      const got = [];
      const off = client.on('token.removed', (e) => got.push(['removed', e.token.label]));
      client.on('token.inserted', (e) => got.push(['inserted', e.token.label]));
      client.on('event', (e) => got.push(['event', e.event]));
      await client.listCredentials();
      off();
      assert.deepEqual(got, [
        ['event', 'token.removed'], ['removed', 'Kyso Demo'],
        ['event', 'token.inserted'], ['inserted', 'Kyso Demo'],
        ['event', 'something.new'],
      ]);
    },
  );
});

test('requests_concurrent_answeredOutOfOrder_eachGetsItsOwnResult', async () => {
  await withAgent(
    (msg, conn) => setTimeout(() => conn.send({ id: msg.id, result: { credentials: [{ id: String(msg.params.role) }] } }), msg.params.role === 'teacher' ? 60 : 5),
    async (client) => {
      const [a, b, c] = await Promise.all([
        client.listCredentials({ role: 'teacher' }),
        client.listCredentials({ role: 'principal' }),
        client.listCredentials({ role: 'seal' }),
      ]);
      assert.deepEqual([a[0].id, b[0].id, c[0].id], ['teacher', 'principal', 'seal']);
    },
  );
});

test('normalizeDigest_acceptsBytesHexBase64AndUrlSafe', () => {
  const d = sha256('x');
  const want = { hash: d.toString('base64'), hashAlgorithm: 'sha256' };
  assert.deepEqual(normalizeDigest(new Uint8Array(d)), want);
  assert.deepEqual(normalizeDigest(d.buffer.slice(d.byteOffset, d.byteOffset + 32)), want);
  assert.deepEqual(normalizeDigest(d.toString('hex')), want);
  assert.deepEqual(normalizeDigest(d.toString('base64')), want);
  assert.deepEqual(normalizeDigest(d.toString('base64url')), want);
  const d384 = createHash('sha384').update('x').digest();
  assert.equal(normalizeDigest(d384.toString('hex')).hashAlgorithm, 'sha384');
  assert.equal(normalizeDigest(d384.toString('base64')).hashAlgorithm, 'sha384');
  assert.throws(() => normalizeDigest(d, 'sha512'), (e) => e.code === 'DIGEST_INVALID');
});

test('kysoError_unknownCode_keptWithGenericMessages', () => {
  const e = new KysoError({ code: 'SOMETHING_NEW' });
  assert.equal(e.code, 'SOMETHING_NEW');
  assert.match(e.messageVi, /SOMETHING_NEW/);
  assert.ok(e instanceof Error);
  assert.equal(helloResult.agent, 'kyso-agent');
});
