// sign, batch.sign, batch.items, batch.cancel: parse the job, hand it to the signing desk
// (Service::sign) on the worker pool, send its progress and its answer.

#include "signing.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>

#include "connection.hpp"
#include "methods.hpp"
#include "request.hpp"

namespace kyso::agent::protocol {
namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxProgressIntervalMs = 60000;

/// role, credentialId, algorithm, signatureEncoding: shared by sign and batch.sign.
SignJob parse_job(const json& p, Connection& c, bool batch) {
  SignJob job;
  job.origin = c.origin();
  job.batch = batch;
  job.language = c.language();
  const auto role = p.find("role");
  if (role == p.end() || !role->is_string()) throw Error(ErrorCode::BadRequest, "role missing");
  const auto r = parse_role(role->get<std::string>());
  if (!r) throw Error(ErrorCode::BadRequest, "role must be teacher, principal or seal");
  job.role = *r;
  job.credential_id = optional_string(p, "credentialId");
  if (const auto a = p.find("algorithm"); a != p.end()) {
    const auto alg = a->is_string() ? parse_sign_algorithm(a->get<std::string>()) : std::nullopt;
    if (!alg) throw Error(ErrorCode::BadRequest, "unknown algorithm");
    job.algorithm = alg;
  }
  if (const auto e = p.find("signatureEncoding"); e != p.end()) {
    if (*e == "raw")
      job.encoding = SignatureEncoding::Raw;
    else if (*e != "der")
      throw Error(ErrorCode::BadRequest, "signatureEncoding is der or raw");
  }
  return job;
}

/// One kind of item per batch: hash items or document items, checked for every item (the
/// approval and the answer are built for the kind of the first).
void parse_items(const json& items, Connection& c, std::vector<Item>& into) {
  std::vector<Item> parsed;
  parsed.reserve(items.size());
  std::optional<bool> documents;
  if (!into.empty()) documents = into.front().document != nullptr;
  for (const auto& i : items) {
    parsed.push_back(parse_item(i, &c.transfers()));
    const bool document = parsed.back().document != nullptr;
    if (!documents) documents = document;
    if (document != *documents) {
      throw Error(ErrorCode::BadRequest, "item " + std::to_string(into.size() + parsed.size() - 1) +
                                             " is " + std::string(to_string(parsed.back().type)) +
                                             " but the batch's first is " +
                                             (*documents ? "a document" : "a hash") +
                                             ": hash and document items go in separate requests");
    }
  }
  for (auto& i : parsed) into.push_back(std::move(i));
}

/// The batch ended (summary or error on its way): the connection keeps only its id.
void end_batch(Connection& c, Batch& b) {
  b.state = Batch::State::Done;
  b.job = SignJob{};
  auto& batches = c.batches();
  const std::string key = b.id.dump();
  if (batches.by_id.erase(key) == 0) return;
  batches.ended.push_back(key);
  if (batches.ended.size() > Batches::kEndedKept) batches.ended.pop_front();
}

struct Answer {
  std::string text;
  std::optional<SignOutcome> documents;  ///< signed documents: answered on the connection
};

/// Signed documents go back inline while they are small, else as downloads (items.hpp).
void finish_documents(Connection& c, const Id& id, const SignOutcome& o, bool batch) {
  try {
    if (!batch && !o.results.front().ok()) return c.fail(id, *o.results.front().error);
    c.send(wire::documents_result(id, o, batch, c.transfers()));
  } catch (const Error& e) {
    c.fail(id, e);
  }
}

void start_job(Connection& c, const Id& id, SignJob job, const std::shared_ptr<Batch>& batch) {
  if (job.items.front().document) job.scratch = c.transfers().dir();
  auto* conn = &c;  // alive while the job runs: run() holds it
  c.run<Answer>(
      [svc = &c.service(), job = std::move(job), batch, id, conn](const std::atomic<bool>& cancel) {
        std::optional<wire::ProgressEvents> events;
        Service::Progress progress;
        if (batch) {
          events.emplace(id, job.items.size(), batch->progress);
          progress = [&](std::size_t i, const SignResult& r) {
            if (auto text = events->add(i, r); !text.empty()) conn->send(std::move(text));
          };
        }
        SignOutcome o = svc->sign(job, cancel, progress);
        // The answer is built here, off the connection's executor (documents go through its
        // transfers, there).
        Answer a;
        if (!o.documents.empty()) {
          a.documents = std::move(o);
        } else if (batch) {
          a.text = wire::batch_summary(id, o, events->sent());
        } else {
          a.text = wire::sign_result(id, o, to_hex(job.items.front().digest));
        }
        return a;
      },
      [id, batch](Connection& self, std::optional<Answer> a, std::optional<Error> err) {
        if (batch) end_batch(self, *batch);
        if (err) {
          self.fail(id, *err);
        } else if (a->documents) {
          finish_documents(self, id, *a->documents, batch != nullptr);
        } else {
          self.send(std::move(a->text));
        }
        // Off the batch's path: the answer is on its way.
        boost::asio::post(self.workers(), [svc = &self.service()] { svc->audit().checkpoint(); });
      },
      batch ? batch->cancel : nullptr);
}

// ---- sign --------------------------------------------------------------------------------------

SignJob parse_sign(const json& p, Connection& c) {
  SignJob job = parse_job(p, c, false);
  const auto item = p.find("item");
  if (item == p.end()) throw Error(ErrorCode::BadRequest, "item missing");
  job.items.push_back(parse_item(*item, &c.transfers()));
  return job;
}

void sign(Connection& c, const Id& id, SignJob job) {
  start_job(c, id, std::move(job), nullptr);
}

// ---- batch.sign --------------------------------------------------------------------------------

void run_batch(Connection& c, const std::shared_ptr<Batch>& b) {
  b->state = Batch::State::Running;
  c.release();  // the batch's slot since it was announced; the job takes its own
  try {
    if (b->progress.signatures && b->job.items.front().document) {
      throw Error(ErrorCode::BadRequest, "signaturesInEvents is for hash items");
    }
    start_job(c, b->id, b->job, b);
  } catch (const Error& e) {
    end_batch(c, *b);
    c.fail(b->id, e);
  }
}

std::shared_ptr<Batch> parse_batch(const json& p, Connection& c) {
  auto b = std::make_shared<Batch>();
  b->job = parse_job(p, c, true);
  const auto items = p.find("items");
  if (items == p.end() || !items->is_array() || items->empty()) {
    throw Error(ErrorCode::BadRequest, "items must be a non-empty array");
  }
  b->total = items->size();
  if (const auto t = p.find("total"); t != p.end()) {
    if (!t->is_number_unsigned() || t->get<std::size_t>() == 0) {
      throw Error(ErrorCode::BadRequest, "total must be a positive integer");
    }
    b->total = t->get<std::size_t>();
  }
  const auto max = c.limits().max_batch_items;
  if (b->total > max) {
    throw Error(ErrorCode::BatchLimit, "a batch holds at most " + std::to_string(max) + " items");
  }
  if (items->size() > b->total) {
    throw Error(
        ErrorCode::BatchLimit,
        std::to_string(items->size()) + " items sent for a batch of " + std::to_string(b->total));
  }
  if (const auto e = p.find("progressEvery"); e != p.end()) {
    if (!e->is_number_unsigned() || e->get<std::size_t>() == 0) {
      throw Error(ErrorCode::BadRequest, "progressEvery must be a positive integer");
    }
    b->progress.every = e->get<std::size_t>();
  }
  if (const auto e = p.find("progressInterval"); e != p.end()) {
    if (!e->is_number_unsigned() || e->get<std::size_t>() == 0 ||
        e->get<std::size_t>() > kMaxProgressIntervalMs) {
      throw Error(ErrorCode::BadRequest,
                  "progressInterval must be 1.." + std::to_string(kMaxProgressIntervalMs) + " ms");
    }
    b->progress.interval = std::chrono::milliseconds(e->get<std::size_t>());
  }
  if (const auto e = p.find("signaturesInEvents"); e != p.end()) {
    if (!e->is_boolean()) throw Error(ErrorCode::BadRequest, "signaturesInEvents is true or false");
    b->progress.signatures = e->get<bool>();
    if (b->progress.signatures && b->progress.interval.count() == 0) {
      throw Error(ErrorCode::BadRequest, "signaturesInEvents needs progressInterval");
    }
  }
  b->job.items.reserve(b->total);
  parse_items(*items, c, b->job.items);
  return b;
}

void batch_sign(Connection& c, const Id& id, std::shared_ptr<Batch> b) {
  const std::string key = id.dump();
  auto& batches = c.batches();
  if (batches.by_id.contains(key) || std::ranges::find(batches.ended, key) != batches.ended.end()) {
    throw Error(ErrorCode::BadRequest, "batch id already used");
  }
  b->id = id;
  batches.by_id[key] = b;
  c.hold();  // the batch counts from now until its summary
  if (b->job.items.size() == b->total) run_batch(c, b);
}

// ---- batch.items, batch.cancel -----------------------------------------------------------------

struct BatchRef {
  std::shared_ptr<Batch> batch;
  const json* items = nullptr;
};

std::shared_ptr<Batch> find_batch(const json& p, Connection& c) {
  const auto bid = p.find("batchId");
  if (bid == p.end()) throw Error(ErrorCode::BadRequest, "batchId is required");
  const auto& batches = c.batches();
  const std::string key = bid->dump();
  if (const auto it = batches.by_id.find(key); it != batches.by_id.end()) return it->second;
  if (std::ranges::find(batches.ended, key) == batches.ended.end()) {
    throw Error(ErrorCode::BadRequest, "unknown batchId " + key);
  }
  auto ended = std::make_shared<Batch>();  // one of the latest ended: what is left of it
  ended->id = *bid;
  ended->state = Batch::State::Done;
  return ended;
}

BatchRef parse_batch_items(const json& p, Connection& c) {
  const auto items = p.find("items");
  if (!p.contains("batchId") || items == p.end() || !items->is_array()) {
    throw Error(ErrorCode::BadRequest, "batchId and items are required");
  }
  return {find_batch(p, c), &*items};
}

void batch_items(Connection& c, const Id& id, BatchRef ref) {
  auto& b = *ref.batch;
  if (b.state != Batch::State::Collecting) {
    throw Error(ErrorCode::BatchLimit,
                "the batch already ran: its approval is used, and items sent after it are not "
                "signed");
  }
  if (b.job.items.size() + ref.items->size() > b.total) {
    throw Error(ErrorCode::BatchLimit,
                "more items than the batch's total of " + std::to_string(b.total));
  }
  parse_items(*ref.items, c, b.job.items);
  c.respond(id, {{"received", b.job.items.size()}, {"total", b.total}});
  if (b.job.items.size() == b.total) run_batch(c, ref.batch);
}

void batch_cancel(Connection& c, const Id& id, std::shared_ptr<Batch> b) {
  if (b->state == Batch::State::Done) return c.respond(id, {{"cancelled", false}});
  b->cancel->store(true);
  if (b->state == Batch::State::Collecting) {
    end_batch(c, *b);
    c.release();
    c.fail(b->id, Error(ErrorCode::UserCancelled, "batch cancelled before it started"));
  }
  c.respond(id, {{"cancelled", true}});
}

const std::vector<Method> kMethods = {
    method("sign", Trust::Trusted, true, parse_sign, sign),
    method("batch.sign", Trust::Trusted, true, parse_batch, batch_sign),
    method("batch.items", Trust::Trusted, false, parse_batch_items, batch_items),
    method("batch.cancel", Trust::Trusted, false, find_batch, batch_cancel),
};

}  // namespace

std::span<const Method> signing_methods() {
  return kMethods;
}

}  // namespace kyso::agent::protocol
