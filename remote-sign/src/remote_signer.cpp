#include "kyso/remote/remote_signer.hpp"

#include <algorithm>

#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"

namespace kyso::remote {
namespace {

HashAlgorithm hash_for_size(std::size_t n) {
  switch (n) {
    case 32: return HashAlgorithm::Sha256;
    case 48: return HashAlgorithm::Sha384;
    case 64: return HashAlgorithm::Sha512;
    default: throw Error(ErrorCode::DigestInvalid, "digest of " + std::to_string(n) + " bytes");
  }
}

std::size_t ec_field_bytes(const CertificateInfo& c) {
  if (c.curve == "P-384") return 48;
  if (c.curve == "P-521") return 66;
  return 32;
}

}  // namespace

CscAdapter::CscAdapter(std::string name, std::shared_ptr<CscClient> client)
    : name_(std::move(name)), client_(std::move(client)) {}

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
  // The PIN and OTP go out once; further chunks extend that approval (no second OTP).
  for (std::size_t at = 0; at < digests.size(); at += chunk) {
    const auto part = digests.subspan(at, std::min(chunk, digests.size() - at));
    Authorization a = at == 0 ? client_->authorize(credential_id, part, hash, pin, otp)
                              : client_->extend(credential_id, chunks_.front().sad, part, hash);
    chunks_.push_back({std::move(a.sad), {part.begin(), part.end()}});
  }
}

std::vector<SignResult> CscAdapter::sign(const std::string& credential_id, SignAlgorithm alg,
                                         std::span<const Bytes> digests) {
  const std::lock_guard lock(mutex_);
  std::vector<SignResult> results(digests.size());
  std::size_t at = 0;
  // One signHash per authorized chunk, matched in order; a digest outside the authorization
  // is refused here rather than sent for the server to refuse.
  while (at < digests.size()) {
    const Chunk* match = nullptr;
    std::size_t len = 0;
    for (const auto& c : chunks_) {
      const auto it = std::ranges::find(c.digests, digests[at]);
      if (it == c.digests.end()) continue;
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
    const auto part = digests.subspan(at, len);
    try {
      auto sigs = client_->sign_hash(credential_id, match->sad, part, alg);
      for (std::size_t i = 0; i < len; ++i) results[at + i].signature = std::move(sigs[i]);
    } catch (const Error& e) {
      for (std::size_t i = 0; i < len; ++i) results[at + i].error = e;
    }
    at += len;
  }
  return results;
}

RemoteSigner::RemoteSigner(std::shared_ptr<ProviderAdapter> adapter, Credential credential)
    : adapter_(std::move(adapter)), credential_(std::move(credential)) {}

AuthKind RemoteSigner::auth_required() const {
  const AuthNeeds n = adapter_->needs(credential_.id());
  if (n.otp) return AuthKind::Otp;
  if (n.pin) return AuthKind::Pin;
  return AuthKind::None;
}

void RemoteSigner::set_pin(Secret pin) {
  pin_ = std::move(pin);
}

void RemoteSigner::authorize(const Secret* secret, std::span<const Bytes> digests) {
  if (digests.empty()) return;
  const AuthNeeds n = adapter_->needs(credential_.id());
  const Secret* pin = pin_ ? &*pin_ : nullptr;
  const Secret* otp = n.otp ? secret : nullptr;
  if (n.pin && !n.otp && pin == nullptr) pin = secret;  // a PIN-only service
  if (n.pin && pin == nullptr) throw Error(ErrorCode::LoginRequired, "the remote PIN is missing");
  if (n.otp && otp == nullptr) throw Error(ErrorCode::LoginRequired, "the OTP is missing");
  try {
    adapter_->authorize(credential_.id(), pin, otp, digests, hash_for_size(digests.front().size()));
  } catch (...) {
    pin_.reset();  // never resent: a wrong PIN is asked again by the caller
    throw;
  }
  pin_.reset();
}

Bytes RemoteSigner::sign_digest(SignAlgorithm alg, std::span<const std::uint8_t> digest,
                                SignatureEncoding enc) {
  const Bytes d(digest.begin(), digest.end());
  auto r = sign_digests(alg, std::span(&d, 1), enc);
  if (!r.front().ok()) throw *r.front().error;
  return std::move(r.front().signature);
}

std::vector<SignResult> RemoteSigner::sign_digests(SignAlgorithm alg, std::span<const Bytes> digests,
                                                   SignatureEncoding enc) {
  for (const auto& d : digests) check_digest(alg, d);
  auto results = adapter_->sign(credential_.id(), alg, digests);
  if (is_ecdsa(alg) && enc == SignatureEncoding::Raw) {
    for (auto& r : results) {
      if (r.ok()) r.signature = ecdsa_der_to_raw(r.signature, ec_field_bytes(credential_.cert));
    }
  }
  return results;
}

}  // namespace kyso::remote
