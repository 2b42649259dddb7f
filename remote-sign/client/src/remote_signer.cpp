#include "kyso/remote/remote_signer.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <map>
#include <set>
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
  approved_.clear();
  sad_.clear();
  if (digests.empty()) return;
  // The whole batch in one authorization (numSignatures = its size): the appliance binds the
  // approval to exactly these hashes, each signable once. Identical documents give identical
  // digests: approved once, signed once, the signature reused.
  std::vector<Bytes> distinct;
  distinct.reserve(digests.size());
  std::set<Bytes> seen;
  for (const auto& d : digests) {
    if (seen.insert(d).second) distinct.push_back(d);
  }
  const Authorization a = client_->authorize(credential_id, distinct, hash, pin, otp);
  sad_ = a.sad;
  sad_renew_at_ = std::chrono::steady_clock::now() + a.expires_in / 2;
  approved_ = std::move(seen);
  hash_ = hash;
}

std::string CscAdapter::live_sad(CscClient& c, const std::string& credential_id) {
  const std::lock_guard lock(extend_mutex_);
  // A long batch renews the SAD halfway through its life (extendTransaction trades it for a new
  // one over the same approved hashes, once); the approval itself never grows.
  if (std::chrono::steady_clock::now() >= sad_renew_at_) {
    const Authorization a = c.extend(credential_id, sad_, {}, hash_);
    sad_ = a.sad;
    sad_renew_at_ = std::chrono::steady_clock::now() + a.expires_in / 2;
  }
  return sad_;
}

std::vector<SignResult> CscAdapter::sign(const std::string& credential_id, SignAlgorithm alg,
                                         std::span<const Bytes> digests,
                                         const SignControl& control) {
  const std::lock_guard lock(mutex_);
  const std::size_t chunk = info(credential_id).multisign;
  std::vector<SignResult> results(digests.size());
  // Each digest goes out once: a repeat waits for the chunk of its first occurrence.
  std::map<Bytes, std::size_t> first_of;
  std::vector<std::optional<std::size_t>> copy_of(digests.size());
  for (std::size_t i = 0; i < digests.size(); ++i) {
    const auto [it, fresh] = first_of.emplace(digests[i], i);
    if (!fresh) copy_of[i] = it->second;
  }
  const std::size_t jobs = (digests.size() + chunk - 1) / chunk;
  // What each chunk sends, decided before the lanes start (approved_ is not touched by them).
  std::vector<std::vector<std::size_t>> sends(jobs);
  for (std::size_t i = 0; i < digests.size(); ++i) {
    if (copy_of[i]) continue;
    if (approved_.count(digests[i]) == 0) {
      // Outside the approval: refused here rather than sent for the appliance to refuse.
      results[i].error = Error(ErrorCode::LoginRequired, "digest not authorized: authorize first");
      continue;
    }
    sends[i / chunk].push_back(i);
  }
  std::mutex done_mutex;
  std::condition_variable done_cv;
  std::vector<bool> done(jobs, false);
  std::optional<Error> fatal;
  run_jobs(jobs, [&](CscClient& c, std::size_t j) {
    const std::size_t at = j * chunk;
    const std::size_t len = std::min(chunk, digests.size() - at);
    const std::vector<std::size_t>& sent_at = sends[j];
    std::vector<Bytes> send;
    send.reserve(sent_at.size());
    for (const std::size_t i : sent_at) send.push_back(digests[i]);
    std::optional<Error> skip;
    {
      const std::lock_guard l(done_mutex);
      skip = fatal;
    }
    if (!skip && control.cancel != nullptr && control.cancel->load()) {
      skip = Error(ErrorCode::UserCancelled, "batch cancelled before this item");
    }
    if (skip) {
      for (const std::size_t i : sent_at) results[i].error = skip;
    } else if (!send.empty()) {
      try {
        auto sigs = c.sign_hash(credential_id, live_sad(c, credential_id), send, alg);
        for (std::size_t k = 0; k < sent_at.size(); ++k) {
          results[sent_at[k]].signature = std::move(sigs[k]);
        }
      } catch (const Error& e) {
        for (const std::size_t i : sent_at) results[i].error = e;
        if (stops_batch(e.code())) {
          const std::lock_guard l(done_mutex);
          if (!fatal) fatal = e;
        }
      }
    }
    {
      std::unique_lock l(done_mutex);
      for (std::size_t i = at; i < at + len; ++i) {
        if (!copy_of[i]) continue;
        const std::size_t src = *copy_of[i];
        // Chunks start in order, so an earlier one is running on another lane or done.
        done_cv.wait(l, [&] { return src >= at || done[src / chunk]; });
        results[i] = results[src];
      }
      done[j] = true;
    }
    done_cv.notify_all();
    if (control.chunk_done) {
      control.chunk_done(at, std::span<const SignResult>(results).subspan(at, len));
    }
  });
  for (std::size_t i = 0; i < digests.size(); ++i) {
    if (results[i].ok()) approved_.erase(digests[i]);  // signed once: not again
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
