#include "kyso/remote/remote_signer.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>

#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"

namespace kyso::remote {
namespace {

HashAlgorithm hash_for_size(std::size_t n) {
  switch (n) {
    case 32:
      return HashAlgorithm::Sha256;
    case 48:
      return HashAlgorithm::Sha384;
    case 64:
      return HashAlgorithm::Sha512;
    default:
      throw Error(ErrorCode::DigestInvalid, "digest of " + std::to_string(n) + " bytes");
  }
}

std::size_t ec_field_bytes(const CertificateInfo& c) {
  if (c.curve == "P-384") return 48;
  if (c.curve == "P-521") return 66;
  return 32;
}

}  // namespace

CscAdapter::CscAdapter(std::string name, std::shared_ptr<CscClient> client, std::size_t pipeline)
    : name_(std::move(name)),
      client_(std::move(client)),
      pipeline_(std::max<std::size_t>(1, pipeline)) {}

std::size_t CscAdapter::round_trips() const {
  const std::lock_guard lock(mutex_);
  std::size_t n = client_->round_trips();
  for (const auto& c : lanes_) n += c->round_trips();
  return n;
}

template <typename Fn>
void CscAdapter::run_jobs(std::size_t count, Fn&& fn) {
  const std::size_t lanes = std::min(pipeline_, count);
  while (lanes_.size() + 1 < lanes) lanes_.push_back(client_->clone());
  for (auto& c : lanes_) c->set_access_token(client_->access_token());
  std::atomic<std::size_t> next{0};
  std::mutex failure_mutex;
  std::exception_ptr failure;
  auto lane = [&](CscClient& c) {
    for (;;) {
      const std::size_t i = next++;
      if (i >= count) return;
      try {
        fn(c, i);
      } catch (...) {
        const std::lock_guard lock(failure_mutex);
        if (!failure) failure = std::current_exception();
        next = count;  // start nothing new
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  for (std::size_t k = 1; k < lanes; ++k) threads.emplace_back(lane, std::ref(*lanes_[k - 1]));
  lane(*client_);
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
}

std::vector<Credential> CscAdapter::credentials() {
  std::vector<RemoteCredentialInfo> infos;
  std::vector<Credential> out;
  for (const auto& id : client_->list_credentials()) {
    RemoteCredentialInfo info = client_->credential_info(id);
    if (info.certificates.empty()) continue;  // nothing to show or check before signing
    Credential c;
    c.cert = parse_certificate(info.certificates.front());
    c.chain.assign(info.certificates.begin() + 1, info.certificates.end());
    c.source = {"remote", name_, id, ""};
    c.algorithms = algorithms_for_key(c.cert);
    out.push_back(std::move(c));
    infos.push_back(std::move(info));
  }
  const std::lock_guard lock(mutex_);
  infos_ = std::move(infos);
  return out;
}

const RemoteCredentialInfo& CscAdapter::info(const std::string& id) const {
  for (const auto& i : infos_) {
    if (i.id == id) return i;
  }
  throw Error(ErrorCode::CredentialNotFound, "remote credential " + id + " not listed");
}

AuthNeeds CscAdapter::needs(const std::string& credential_id) const {
  const std::lock_guard lock(mutex_);
  const auto& i = info(credential_id);
  return {i.pin, i.otp, false};
}

void CscAdapter::authorize(const std::string& credential_id, const Secret* pin, const Secret* otp,
                           std::span<const Bytes> digests, HashAlgorithm hash) {
  const std::lock_guard lock(mutex_);
  const std::size_t chunk = info(credential_id).multisign;
  chunks_.clear();
  if (digests.empty()) return;
  const std::size_t count = (digests.size() + chunk - 1) / chunk;
  chunks_.resize(count);
  for (std::size_t k = 0; k < count; ++k) {
    const auto part = digests.subspan(k * chunk, std::min(chunk, digests.size() - k * chunk));
    chunks_[k].digests.assign(part.begin(), part.end());
  }
  // The PIN and OTP go out once. Further chunks extend that approval (no second OTP) when they
  // are signed: each lane extends its chunk right before its signHash, so the HSM signs the
  // first chunk while the next ones are being authorized.
  chunks_[0].sad = client_->authorize(credential_id, chunks_[0].digests, hash, pin, otp).sad;
  first_sad_ = chunks_[0].sad;
  hash_ = hash;
}

std::vector<SignResult> CscAdapter::sign(const std::string& credential_id, SignAlgorithm alg,
                                         std::span<const Bytes> digests,
                                         const SignControl& control) {
  const std::lock_guard lock(mutex_);
  std::vector<SignResult> results(digests.size());
  struct Job {
    Chunk* chunk;
    std::size_t at;
    std::size_t len;
  };
  std::vector<Job> jobs;
  std::size_t at = 0;
  // One signHash per authorized chunk, matched in order; a digest outside the authorization
  // is refused here rather than sent for the server to refuse.
  while (at < digests.size()) {
    Chunk* match = nullptr;
    std::size_t len = 0;
    for (auto& c : chunks_) {
      if (std::ranges::find(c.digests, digests[at]) == c.digests.end()) continue;
      match = &c;
      while (at + len < digests.size() && len < c.digests.size() &&
             std::ranges::find(c.digests, digests[at + len]) != c.digests.end()) {
        ++len;
      }
      break;
    }
    if (match == nullptr) {
      results[at].error = Error(ErrorCode::LoginRequired, "digest not authorized: authorize first");
      ++at;
      continue;
    }
    jobs.push_back({match, at, len});
    at += len;
  }
  // After an error no later request can survive (service gone, session ended), the chunks not
  // sent yet get that error without being sent.
  std::mutex fatal_mutex;
  std::optional<Error> fatal;
  run_jobs(jobs.size(), [&](CscClient& c, std::size_t j) {
    const Job& job = jobs[j];
    std::optional<Error> skip;
    {
      const std::lock_guard fatal_lock(fatal_mutex);
      skip = fatal;
    }
    if (!skip && control.cancel != nullptr && control.cancel->load()) {
      skip = Error(ErrorCode::UserCancelled, "batch cancelled before this item");
    }
    if (skip) {
      for (std::size_t i = 0; i < job.len; ++i) results[job.at + i].error = skip;
    } else {
      try {
        std::string sad;
        {
          // Once per chunk, whichever lane gets there first (a chunk's digests may come in
          // several runs).
          const std::lock_guard extend_lock(extend_mutex_);
          if (job.chunk->sad.empty()) {
            job.chunk->sad = c.extend(credential_id, first_sad_, job.chunk->digests, hash_).sad;
          }
          sad = job.chunk->sad;
        }
        auto sigs = c.sign_hash(credential_id, sad, digests.subspan(job.at, job.len), alg);
        for (std::size_t i = 0; i < job.len; ++i) {
          results[job.at + i].signature = std::move(sigs[i]);
        }
      } catch (const Error& e) {
        for (std::size_t i = 0; i < job.len; ++i) results[job.at + i].error = e;
        if (stops_batch(e.code())) {
          const std::lock_guard fatal_lock(fatal_mutex);
          if (!fatal) fatal = e;
        }
      }
    }
    if (control.chunk_done) {
      control.chunk_done(job.at, std::span<const SignResult>(results).subspan(job.at, job.len));
    }
  });
  // Digests refused above (not authorized) are reported too.
  if (control.chunk_done) {
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (results[i].error && results[i].error->code() == ErrorCode::LoginRequired) {
        control.chunk_done(i, std::span<const SignResult>(results).subspan(i, 1));
      }
    }
  }
  return results;
}

RemoteSigner::RemoteSigner(std::shared_ptr<ProviderAdapter> adapter, Credential credential)
    : adapter_(std::move(adapter)), credential_(std::move(credential)) {}

const std::string& RemoteSigner::remote_id() const noexcept {
  // The provider's own id (source.serial); kyso-appliance uses the certificate's SHA-256 too.
  return credential_.source.serial.empty() ? credential_.id() : credential_.source.serial;
}

AuthKind RemoteSigner::auth_required() const {
  const AuthNeeds n = adapter_->needs(remote_id());
  if (n.otp) return AuthKind::Otp;
  if (n.pin) return AuthKind::Pin;
  return AuthKind::None;
}

void RemoteSigner::authorize(const UserAuth& typed, std::span<const Bytes> digests) {
  if (digests.empty()) return;
  const AuthNeeds n = adapter_->needs(remote_id());
  if (n.pin && typed.pin == nullptr) {
    throw Error(ErrorCode::LoginRequired, "the remote PIN is missing");
  }
  if (n.otp && typed.otp == nullptr) throw Error(ErrorCode::LoginRequired, "the OTP is missing");
  adapter_->authorize(remote_id(), n.pin ? typed.pin : nullptr, n.otp ? typed.otp : nullptr,
                      digests, hash_for_size(digests.front().size()));
}

Bytes RemoteSigner::sign_digest(SignAlgorithm alg, std::span<const std::uint8_t> digest,
                                SignatureEncoding enc) {
  const Bytes d(digest.begin(), digest.end());
  auto r = sign_digests(alg, std::span(&d, 1), enc);
  if (!r.front().ok()) throw *r.front().error;
  return std::move(r.front().signature);
}

std::vector<SignResult> RemoteSigner::sign_digests(SignAlgorithm alg,
                                                   std::span<const Bytes> digests,
                                                   SignatureEncoding enc,
                                                   const SignControl& control) {
  for (const auto& d : digests) check_digest(alg, d);
  auto results = adapter_->sign(remote_id(), alg, digests, control);
  if (is_ecdsa(alg) && enc == SignatureEncoding::Raw) {
    for (auto& r : results) {
      if (r.ok()) r.signature = ecdsa_der_to_raw(r.signature, ec_field_bytes(credential_.cert));
    }
  }
  return results;
}

}  // namespace kyso::remote
