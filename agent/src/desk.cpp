// The signing desk: one path for every job, whatever the credential's source (a token, a remote
// service) and the items (hashes, xml, pdf, cms): choose the credential -> check its certificate
// -> approve (one dialog builder; the PIN and OTP typed there go to one authorization) -> sign
// in order (ordered.hpp) -> audit each item before it is reported -> report. Documents on a
// remote credential are prepared before the approval (two-phase signing, formats/prepare.hpp),
// so its one authorization covers exactly their digests, and embedded as their chunks return.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "documents.hpp"
#include "kyso/agent/pinentry.hpp"
#include "kyso/agent/service.hpp"
#include "kyso/core/random.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/formats/cert_check.hpp"
#include "ordered.hpp"
#include "remote_source.hpp"

namespace kyso::agent {
namespace {

constexpr std::size_t kDialogTitles = 5;
/// The fewest bytes (escaped) a listed title gets before fewer titles are listed.
constexpr std::size_t kMinTitleLine = 90;

}  // namespace

std::string signer_label(const CertificateInfo& c) {
  std::string s = c.common_name;
  const UidValue* shown = c.uids.empty() ? nullptr : &c.uids.front();
  for (const char* personal : {"HC", "CMND", "CCCD"}) {
    const auto it = std::ranges::find(c.uids, std::string(personal), &UidValue::prefix);
    if (it != c.uids.end()) shown = &*it;
  }
  if (shown != nullptr) s += " (" + shown->raw + ")";
  return s;
}

namespace {

bool is_remote(const Credential& c) {
  return c.source.kind == "remote";
}

/// A token used by a job is logged out when the job ends, whatever happens: the next request
/// needs the user again, and no PIN stays usable behind their back.
struct LogoutGuard {
  std::shared_ptr<pkcs11::Token> token;  ///< none for a remote credential
  ~LogoutGuard() {
    if (token) token->logout();
  }
};

/// The hash every item fixes (hash items, and CMS items over a given digest), which must be one
/// for the whole job; none when no item fixes it.
std::optional<HashAlgorithm> fixed_hash(const SignJob& job) {
  std::optional<HashAlgorithm> fixed;
  for (const auto& i : job.items) {
    std::optional<HashAlgorithm> h;
    if (!i.document) h = i.hash_algorithm;
    if (i.document && i.document->digest_only) h = i.document->digest_algorithm;
    if (!h) continue;
    if (fixed && *fixed != *h) {
      throw Error(ErrorCode::BadRequest, "all items of a batch must use the same hashAlgorithm");
    }
    fixed = h;
  }
  return fixed;
}

}  // namespace

Service::JobSlot::JobSlot(std::atomic<bool>& busy, std::string_view what) : busy_(busy) {
  bool expected = false;
  if (!busy_.compare_exchange_strong(expected, true))
    throw Error(ErrorCode::Busy, std::string(what));
}

// ---- choose ------------------------------------------------------------------------------------

Located Service::choose(const SignJob& job, const std::atomic<bool>* cancel) {
  std::string why;
  auto fits = credentials_for(job.role, &why);
  // Nothing present fits: a remote service not signed in yet may hold it (its password dialog).
  const bool found =
      job.credential_id
          ? std::ranges::any_of(
                fits, [&](const Located& l) { return l.credential.id() == *job.credential_id; })
          : !fits.empty();
  if (!found && sign_in_remote(job.origin, job.language, cancel)) {
    fits = credentials_for(job.role, &why);
  }
  if (job.credential_id) {
    const auto it = std::ranges::find_if(
        fits, [&](const Located& l) { return l.credential.id() == *job.credential_id; });
    if (it != fits.end()) return *it;
    // Present but not for this role, or not present at all?
    auto present = library_->credentials();
    for (auto& c : remote_->credentials()) present.push_back(std::move(c));
    for (const auto& c : present) {
      if (c.id() == *job.credential_id) {
        throw Error(ErrorCode::RoleMismatch, "credential " + *job.credential_id +
                                                 " may not sign as " +
                                                 std::string(to_string(job.role)));
      }
    }
    throw Error(ErrorCode::CredentialNotFound,
                "no present token holds credential " + *job.credential_id);
  }
  if (fits.empty()) throw Error(ErrorCode::RoleNoCredential, why);
  return fits.front();
}

SignAlgorithm Service::choose_algorithm(const SignJob& job, const Credential& cred,
                                        std::optional<HashAlgorithm> hash) {
  const SignAlgorithm alg =
      job.algorithm.value_or(default_algorithm(cred.cert, hash.value_or(HashAlgorithm::Sha256)));
  if (hash && hash_of(alg) != *hash) {
    throw Error(ErrorCode::BadRequest, "algorithm " + std::string(to_string(alg)) +
                                           " does not match hashAlgorithm " +
                                           std::string(to_string(*hash)));
  }
  if (std::ranges::find(cred.algorithms, alg) == cred.algorithms.end()) {
    throw Error(ErrorCode::AlgorithmUnsupported,
                std::string(to_string(alg)) + " is not available for this key/token");
  }
  return alg;
}

// ---- check -------------------------------------------------------------------------------------

void Service::check_certificate(const Credential& cred) {
  const auto now = std::chrono::system_clock::now();
  if (now < cred.cert.not_before) {
    throw Error(ErrorCode::CertNotYetValid,
                "certificate valid from " + to_iso8601(cred.cert.not_before));
  }
  if (now > cred.cert.not_after) {
    throw Error(ErrorCode::CertExpired, "certificate expired " + to_iso8601(cred.cert.not_after));
  }
  if (!cred.cert.can_sign()) throw Error(ErrorCode::CertKeyUsage, "key usage forbids signing");
  if (config_.trust_anchors.empty()) return;  // no trust configured: validity and key usage only
  formats::TrustConfig trust;
  trust.anchors = config_.trust_anchors;
  trust.check_revocation = config_.revocation_check;
  trust.ocsp_url = config_.ocsp_url;
  trust.policy =
      config_.refuse_on_check_failure ? formats::CheckPolicy::Refuse : formats::CheckPolicy::Warn;
  formats::CertificateChecker checker(std::move(trust));
  const auto r = checker.check(cred);  // refuse: throws the first problem
  for (const auto& p : r.problems) {
    spdlog::warn("signing with {} despite {} ({}): the policy is warn", cred.id(), p.name(),
                 p.detail());
  }
}

// ---- approve -----------------------------------------------------------------------------------

Dialog Service::approval_dialog(const SignJob& job, const Credential& cred,
                                const remote::AuthNeeds& needs) const {
  const bool vi = job.language == Language::Vi;
  // What the page chose is in quotes after the agent's own label of the item; a note says so.
  const auto entry = [&](std::size_t i) {
    const Item& item = job.items[i];
    const std::string label = item.document ? dialog_label(*item.document) : std::string();
    if (item.title.empty()) {
      return label + (vi ? "(không tên) #" : "(untitled) #") + std::to_string(i + 1);
    }
    return label + "“" + item.title + "”";
  };
  Dialog d;
  d.title = vi ? "Kyso – Xác nhận ký số" : "Kyso – Confirm signing";
  const std::string head =
      (vi ? "Trang web: " : "Website: ") + job.origin + "\n" + (vi ? "Vai trò: " : "Role: ") +
      std::string(role_label(job.role, job.language)) + "\n" + (vi ? "Người ký: " : "Signer: ") +
      clean_dialog_text(signer_label(cred.cert)) + "\n" + (vi ? "Cấp bởi: " : "Issued by: ") +
      clean_dialog_text(cred.cert.issuer_common_name.empty() ? cred.cert.issuer
                                                             : cred.cert.issuer_common_name) +
      "\n\n";
  std::string tail = vi ? "\n(Tên trong ngoặc kép do trang web đặt.)"
                        : "\n(Names in quotes come from the website.)";
  const bool remote = is_remote(cred);
  if (remote) {
    tail += (vi ? "\n\nKhóa ở dịch vụ ký số từ xa: " : "\n\nKey at the remote service: ") +
            clean_dialog_text(cred.source.name);
  }
  if (needs.pin) {
    if (remote) {
      tail += vi ? "\nNhập mã PIN của chứng thư số để ký." : "\nEnter the key's PIN to sign.";
    } else {
      tail += vi ? "\n\nNhập mã PIN của token để ký." : "\n\nEnter the token's PIN to sign.";
    }
    d.prompt = vi ? "Mã PIN:" : "PIN:";
  } else if (needs.approval) {
    tail += vi ? "\nSau đó xác nhận trên điện thoại của bạn." : "\nThen approve on your phone.";
  }
  d.ok = vi ? "Ký" : "Sign";
  d.cancel = vi ? "Hủy" : "Cancel";

  // The description is one Assuan line (SETDESC), at most kAssuanMaxLine bytes once escaped:
  // titles are listed while they fit, each cut to its share, and "… and N more" counts the rest.
  const std::size_t room = kAssuanMaxLine - std::string_view("SETDESC ").size();
  const std::size_t fixed = escaped_size(head) + escaped_size(tail);
  std::size_t budget = room > fixed ? room - fixed : 0;
  const auto n = job.items.size();
  const auto more = [&](std::size_t rest) {
    return vi ? "\n  … và " + std::to_string(rest) + " văn bản khác"
              : "\n  … and " + std::to_string(rest) + " more";
  };
  std::string what;
  if (!job.batch) {
    const std::string intro = vi ? "Văn bản: " : "Document: ";
    what = intro +
           fit_escaped(entry(0), budget > escaped_size(intro) ? budget - escaped_size(intro) : 0);
  } else {
    what =
        vi ? "Ký " + std::to_string(n) + " văn bản:" : "Sign " + std::to_string(n) + " documents:";
    budget = budget > escaped_size(what) + escaped_size(more(n))
                 ? budget - escaped_size(what) - escaped_size(more(n))
                 : 0;
    std::size_t shown = std::min(n, kDialogTitles);
    while (shown > 1 && budget / shown < kMinTitleLine) --shown;
    const std::size_t share = budget / std::max<std::size_t>(shown, 1);
    for (std::size_t i = 0; i < shown; ++i) what += fit_escaped("\n  • " + entry(i), share);
    if (n > shown) what += more(n - shown);
  }
  d.description = head + what + tail;
  return d;
}

Dialog Service::otp_dialog(const SignJob& job, const Credential& cred) {
  const bool vi = job.language == Language::Vi;
  const std::string n = std::to_string(job.items.size());
  Dialog d;
  d.title = vi ? "Kyso – Mã xác thực OTP" : "Kyso – One-time code (OTP)";
  d.description = (vi ? "Trang web: " : "Website: ") + job.origin + "\n" +
                  (vi ? "Dịch vụ ký số từ xa: " : "Remote signing service: ") + cred.source.name +
                  "\n\n" +
                  (vi ? "Nhập mã OTP 6 chữ số trong ứng dụng xác thực để ký " + n +
                            " văn bản đã xác nhận. Mã dùng một lần, cho cả lô."
                      : "Enter the 6-digit code from your authenticator app to sign the " + n +
                            " approved document(s). One code for the whole batch.");
  d.prompt = vi ? "Mã OTP:" : "OTP:";
  d.ok = vi ? "Ký" : "Sign";
  d.cancel = vi ? "Hủy" : "Cancel";
  return d;
}

Dialog Service::pin_again_dialog(const SignJob& job, const Credential& cred, std::size_t n) {
  const bool vi = job.language == Language::Vi;
  const std::string of = std::to_string(n) + "/" + std::to_string(job.items.size());
  Dialog d;
  d.title = vi ? "Kyso – Mã PIN cho chữ ký " + of : "Kyso – PIN for signature " + of;
  d.description = (vi ? "Trang web: " : "Website: ") + job.origin + "\n" +
                  (vi ? "Token: " : "Token: ") + cred.source.name + "\n\n" +
                  (vi ? "Khóa này yêu cầu mã PIN cho từng chữ ký (theo cấu hình của cán bộ CNTT). "
                        "Nhập mã PIN để ký văn bản thứ " +
                            of + " đã được xác nhận."
                      : "This key needs the PIN for each signature (IT's token profile). Enter "
                        "the PIN to sign approved document " +
                            of + ".");
  d.prompt = vi ? "Mã PIN:" : "PIN:";
  d.ok = vi ? "Ký" : "Sign";
  d.cancel = vi ? "Hủy" : "Cancel";
  return d;
}

void Service::approve(const SignJob& job, const Credential& cred, Signer& signer,
                      std::span<const Bytes> digests, const std::atomic<bool>& cancel) {
  try {
    const remote::AuthNeeds needs = auth_needs(signer);
    const Dialog d = approval_dialog(job, cred, needs);
    std::optional<Secret> pin;  // both wiped when they go out of scope
    std::optional<Secret> otp;
    if (needs.pin) {
      pin = pinentry_.get_pin(d, &cancel);
    } else if (!pinentry_.confirm(d, &cancel)) {
      throw Error(ErrorCode::UserCancelled, "the user did not approve");
    }
    if (needs.otp) otp = pinentry_.get_pin(otp_dialog(job, cred), &cancel);
    if (cancel.load()) throw Error(ErrorCode::UserCancelled, "cancelled before authorization");
    // Exactly one login (a token) or one authorization for exactly these digests (a remote
    // service, SCAL2); a wrong PIN or OTP is reported, never retried.
    authorize(signer, std::move(pin), std::move(otp), digests);
  } catch (const Error& e) {
    audit_job_refusal(job, e, cred.id());
    throw;
  }
}

// ---- audit -------------------------------------------------------------------------------------

void Service::audit_job_refusal(const SignJob& job, const Error& e,
                                const std::string& credential_id) noexcept {
  try {
    audit_->append(AuditRow{.event = "refusal",
                            .origin = job.origin,
                            .role = std::string(to_string(job.role)),
                            .credential_id = credential_id,
                            .digest = {},
                            .result = std::string(e.name()),
                            .detail = e.detail()});
  } catch (...) {
    // Reported to the page anyway.
  }
}

void Service::audit_approval(const SignJob& job, const Credential& cred,
                             std::span<const Bytes> digests, SignAlgorithm alg,
                             std::string_view note) {
  // The approval covers exactly these digests: record them as one value.
  std::string all;
  for (const auto& d : digests) all.append(d.begin(), d.end());
  std::string what;
  if (job.items.front().document) {
    std::map<std::string, std::size_t> kinds;
    for (const auto& i : job.items) ++kinds[std::string(to_string(i.type))];
    for (const auto& [k, n] : kinds) {
      what += (what.empty() ? "" : ", ") + std::to_string(n) + " " + k;
    }
    what = std::to_string(job.items.size()) + " document(s) (" + what + "), ";
  } else {
    what = std::to_string(job.items.size()) + " item(s), ";
  }
  what += to_string(alg);
  if (is_remote(cred)) what += ", remote " + cred.source.name;
  if (!note.empty()) what += ", " + std::string(note);
  const auto* p = reinterpret_cast<const std::uint8_t*>(all.data());
  audit_->append(AuditRow{.event = "approval",
                          .origin = job.origin,
                          .role = std::string(to_string(job.role)),
                          .credential_id = cred.id(),
                          .digest = to_hex(sha256({p, all.size()})),
                          .result = "ok",
                          .detail = what});
}

// ---- the one path ------------------------------------------------------------------------------

SignOutcome Service::sign(const SignJob& job, const std::atomic<bool>& cancel,
                          const Progress& progress) {
  if (job.items.empty()) throw Error(ErrorCode::BadRequest, "nothing to sign");
  const JobSlot slot(busy_);
  const bool documents = job.items.front().document != nullptr;
  const std::string role_name(to_string(job.role));
  std::vector<Bytes> digests;
  digests.reserve(job.items.size());
  for (const auto& i : job.items) digests.push_back(i.digest);

  // 1. The credential and its certificate, before the user is asked anything.
  Located located;
  SignOutcome out;
  DocumentTools tools;
  try {
    if (std::ranges::any_of(job.items,
                            [&](const Item& i) { return (i.document != nullptr) != documents; })) {
      throw Error(ErrorCode::BadRequest,
                  "hash and document items cannot share a request; send them separately");
    }
    if (documents) {
      tools.tsa = tsa_for(job.items, config_);
      tools.long_term = long_term_for(job.items, config_);
    }
    located = choose(job, &cancel);
    out.credential = located.credential;
    check_certificate(out.credential);
    out.algorithm = choose_algorithm(job, out.credential, fixed_hash(job));
  } catch (const Error& e) {
    audit_job_refusal(job, e, located.credential.id());
    throw;
  }
  const Credential& cred = out.credential;
  // A remote (CSC, SCAL2) authorization binds exactly the digests shown before signing: its
  // documents are prepared now (signed attributes, signing time, the PDF's revision), their
  // digests approved and signed in chunks, and each signature embedded as it returns. The
  // states are MACed under a key of this job's own.
  const bool remote_documents = documents && !located.token;
  std::vector<PreparedDocument> prepared;
  formats::StateKey state_key;
  // Documents the module cannot load, or that could not be signed as asked (not XML, no such
  // Id, a broken or encrypted PDF), fail before the user is asked anything: no PIN is typed
  // for a document that then answers DOCUMENT_INVALID.
  std::vector<std::optional<Error>> refused(job.items.size());
  if (documents) {
    load_documents_module(tools, job.items, config_, remote_documents);
    if (remote_documents) {
      prepared.resize(job.items.size());
      state_key.bytes = random_bytes(32);
    }
    const auto signing_time = std::chrono::floor<std::chrono::seconds>(
        std::chrono::system_clock::now());  // one for the job, as the dialog's moment
    for (std::size_t i = 0; i < job.items.size(); ++i) {
      const Item& item = job.items[i];
      if (tools.module_error && (remote_documents || needs_documents_module(item))) {
        refused[i] = tools.module_error;
      } else if (remote_documents) {
        try {
          prepared[i] = prepare_document(*item.document, cred, out.algorithm, job.role, tools,
                                         signing_time, state_key);
        } catch (const Error& e) {
          refused[i] = e;
        } catch (const std::exception& e) {
          refused[i] = Error(ErrorCode::Internal, e.what());
        }
      } else {
        refused[i] =
            check_document(*item.document, cred, out.algorithm, job.role, tools, job.scratch);
      }
    }
    // Nothing here can be signed: no dialog, no PIN; each item fails and is audited as such.
    if (std::ranges::all_of(refused, [](const auto& e) { return e.has_value(); })) {
      const std::size_t n = job.items.size();
      out.documents.resize(n);
      std::vector<AuditRow> rows;
      for (std::size_t i = 0; i < n; ++i) {
        out.results.push_back(SignResult{.signature = {}, .error = refused[i]});
        rows.push_back(AuditRow{
            .event = "signature",
            .origin = job.origin,
            .role = role_name,
            .credential_id = cred.id(),
            .digest = to_hex(digests[i]),
            .result = std::string(refused[i]->name()),
            .detail = std::string(to_string(job.items[i].type)) + " " + refused[i]->detail()});
      }
      audit_->append(rows);
      if (progress) {
        for (std::size_t i = 0; i < n; ++i) progress(i, out.results[i]);
      }
      return out;
    }
  }

  // 2. The credential's signer.
  const LogoutGuard guard{located.token};
  std::shared_ptr<Signer> signer;
  try {
    signer = located.token ? located.token->signer(cred)
                           : remote_signer(cred, job.origin, job.language, &cancel);
  } catch (const Error& e) {
    audit_job_refusal(job, e, cred.id());
    throw;
  }

  // 3. The user's approval of exactly these digests, once. On a remote credential the
  // documents' prepared digests, and the dialog lists only the documents they are of. (A key
  // whose token profile wants the PIN for each signature asks it again before each further
  // one, in the signing loop.)
  std::vector<std::size_t> signable;  // remote documents: the items prepared, in order
  std::vector<Bytes> approved;        // and their digests, as the authorization binds them
  std::optional<SignJob> shown;
  if (remote_documents) {
    for (std::size_t i = 0; i < job.items.size(); ++i) {
      if (refused[i]) continue;
      signable.push_back(i);
      approved.push_back(prepared[i].digest);
    }
    if (signable.size() != job.items.size()) {
      shown = job;
      shown->items.clear();
      for (const std::size_t i : signable) shown->items.push_back(job.items[i]);
    }
  }
  const SignJob& asked = shown ? *shown : job;
  const std::vector<Bytes>& authorized = remote_documents ? approved : digests;
  signer->set_pin_prompt([this, &asked, &cred, &cancel](std::size_t n) {
    return pinentry_.get_pin(pin_again_dialog(asked, cred, n), &cancel);
  });
  approve(asked, cred, *signer, authorized, cancel);
  audit_approval(asked, cred, authorized, out.algorithm, signer->authorization_note());

  // 4. Signed in item order, each audited and committed before it is reported: token lanes (a
  // second session keeps the token busy while the other lane prepares its item), or a remote
  // service's chunks.
  detail::SignLoop loop{
      .items = digests.size(),
      .cancel = &cancel,
      .sign = {},
      .sign_many = {},
      .sign_all = {},
      .digest = [&](std::size_t i) { return std::span<const std::uint8_t>(digests[i]); },
      .detail = {},
      .withhold = {}};
  // A remote signature into its prepared document; a failure (it does not verify over the
  // prepared digest, the TSA, the extension) fails that item alone.
  const auto embed_into = [&](std::size_t i, SignResult& r) {
    if (r.ok()) {
      try {
        out.documents[i] = embed_document(prepared[i], r.signature, *job.items[i].document, tools,
                                          state_key, job.scratch);
      } catch (const Error& e) {
        r.error = e;
      } catch (const std::exception& e) {
        r.error = Error(ErrorCode::Internal, e.what());
      }
    }
    std::ranges::fill(r.signature, std::uint8_t{0});  // the document carries it
    r.signature.clear();
  };
  if (documents) {
    out.documents.resize(job.items.size());
    loop.detail = [&](std::size_t i) {
      return audit_detail(job.items[i], out.documents[i], out.results[i]);
    };
    loop.withhold = [&](std::size_t i) { out.documents[i].reset(); };
  }
  auto* remote = chunked(*signer);
  if (remote_documents && remote != nullptr) {
    // The prepared digests in the service's chunks under the one authorization; each item is
    // embedded and handed on as its chunk returns, refused items at once.
    loop.sign_all = [&, remote](const detail::ChunkDone& chunk_done) {
      const std::size_t n = job.items.size();
      std::vector<SignResult> all(n);
      std::vector<char> handed(n, 0);  // each written by the one thread that hands item i on
      for (std::size_t i = 0; i < n; ++i) {
        if (!refused[i]) continue;
        all[i].error = refused[i];
        handed[i] = 1;
        chunk_done(i, std::span<const SignResult>(&all[i], 1));
      }
      remote::SignControl control;
      control.cancel = &cancel;
      control.chunk_done = [&](std::size_t first, std::span<const SignResult> rs) {
        for (std::size_t k = 0; k < rs.size() && first + k < signable.size(); ++k) {
          const std::size_t i = signable[first + k];
          all[i] = rs[k];
          embed_into(i, all[i]);
          handed[i] = 1;
          chunk_done(i, std::span<const SignResult>(&all[i], 1));
        }
      };
      auto rs = remote->sign_digests(out.algorithm, approved, SignatureEncoding::Der, control);
      for (std::size_t k = 0; k < signable.size(); ++k) {
        const std::size_t i = signable[k];
        if (handed[i] != 0) continue;
        if (k < rs.size()) {
          all[i] = std::move(rs[k]);
          embed_into(i, all[i]);
        } else {
          all[i].error = Error(ErrorCode::Internal, "the service answered fewer results");
        }
      }
      for (auto& r : rs) std::ranges::fill(r.signature, std::uint8_t{0});
      return all;
    };
  } else if (remote_documents) {
    loop.sign = [&](std::size_t i, SignResult& r) {
      if (refused[i]) throw *refused[i];
      r.signature = signer->sign_digest(out.algorithm, prepared[i].digest, SignatureEncoding::Der);
      embed_into(i, r);
      if (r.error) throw *r.error;
    };
  } else if (documents) {
    loop.sign = [&](std::size_t i, SignResult&) {
      if (refused[i]) throw *refused[i];
      out.documents[i] = sign_document(signer, *job.items[i].document, out.algorithm, job.role,
                                       tools, job.scratch);
    };
  } else if (remote != nullptr) {
    loop.sign_all = [&, remote](const detail::ChunkDone& chunk_done) {
      remote::SignControl control;
      control.chunk_done = chunk_done;
      control.cancel = &cancel;
      return remote->sign_digests(out.algorithm, digests, job.encoding, control);
    };
  } else {
    loop.sign = [&](std::size_t i, SignResult& r) {
      r.signature = signer->sign_digest(out.algorithm, digests[i], job.encoding);
    };
    // Runs of items in one hand-off each (TokenSigner::sign_digests, Token::sign_run), unless
    // the key logs in before each signature (its note says so).
    if (signer->authorization_note().empty()) {
      loop.sign_many = [&](std::size_t first, std::size_t count) {
        return signer->sign_digests(
            out.algorithm, std::span<const Bytes>(digests).subspan(first, count), job.encoding);
      };
    }
  }
  out.cancelled =
      detail::sign_in_order(loop, *audit_, job.origin, role_name, cred.id(), out.results, progress);
  return out;
}

}  // namespace kyso::agent
