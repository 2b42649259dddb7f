#pragma once
// Helpers for the formats tests: signers on the fixture token, a scratch directory, the sample
// class (40 Vietnamese transcripts) as XML and PDF, and a loopback RFC 3161 TSA.

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "kyso/core/signer.hpp"

namespace kyso::test {

/// Runs shell commands four at a time; returns the indexes of those that exited non-zero.
std::vector<std::size_t> run_all(const std::vector<std::string>& commands);

/// A logged-in signer for the demo credential `name` (teacher, principal, seal, ...).
/// `fault` loads the token through the fault-injection module (C_Sign counter).
std::shared_ptr<Signer> demo_signer(const std::string& name, bool fault = false);

/// The PKI file named in the manifest's "pki" object (root, sub, chain, tsa_cert, ...).
std::string pki_path(const std::string& key);

/// A fresh directory under the fixture dir, removed at destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ScratchDir(ScratchDir&&) = delete;
  ScratchDir& operator=(ScratchDir&&) = delete;
  [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

Bytes read_bytes(const std::string& path);
void write_bytes(const std::string& path, std::span<const std::uint8_t> data);
void write_text(const std::string& path, std::string_view text);
/// Flips one bit of the byte at `offset` (negative: from the end).
void flip_byte(const std::string& path, long offset);

/// One student's transcript (Học bạ) with realistic Vietnamese content.
struct Transcript {
  std::string id;      ///< XML id, e.g. "hb-07"
  std::string lookup;  ///< the transcript's lookup code (UUID)
  std::string name;    ///< "Nguyễn Văn An"
  std::string citizen_id;
  std::string birth_date;
  std::string gender;
  std::vector<std::pair<std::string, double>> scores;  ///< subject -> yearly average
  std::string conduct;                                 ///< "Tốt"
  std::string result;                                  ///< "Hoàn thành" / "Lên lớp"
};

/// The sample class 10A1 of THPT Chu Văn An: `n` transcripts, deterministic.
std::vector<Transcript> sample_class(std::size_t n = 40);

/// One transcript as an XML document: <HocBa Id=.. > with <DuLieuHocBa Id="..-dl">.
std::string transcript_xml(const Transcript& t);
/// The whole class in one file: <DanhSachHocBa> holding every <HocBa>.
std::string class_xml(const std::vector<Transcript>& ts);
/// One transcript as a one-page PDF (classic xref; `xref_stream` writes a cross-reference
/// stream instead). `padding` adds an uncompressed stream of that many bytes (large files).
Bytes transcript_pdf(const Transcript& t, bool xref_stream = false, std::size_t padding = 0);

/// Who signs the sample transcript, in order (the demo's roles: teacher, principal, seal), and
/// the TSA that makes the signatures B-T (none: B-B).
struct TranscriptSigners {
  std::vector<std::string> names = {"teacher", "principal", "seal"};
  std::string tsa_url;
};
/// The sample class's first transcript as XML signed in the three places (docs/formats.md:
/// DuLieuHocBa/ChuKyGVCN, HocBa/ChuKyHieuTruong, HocBa/ConDau); the second signer uses
/// RSA-PSS, the others PKCS#1 v1.5. Returns the file's path in `dir`.
std::string signed_transcript_xml(const ScratchDir& dir, const TranscriptSigners& s = {});
/// The same transcript as a PDF with one PAdES revision per signer.
std::string signed_transcript_pdf(const ScratchDir& dir, const TranscriptSigners& s = {});
/// Appends an incremental update to a classic-xref PDF (the test writer's, signed by Kyso): the
/// given objects (number -> body), an xref section and a trailer with /Prev.
void append_pdf_revision(const std::string& path, const std::map<int, std::string>& objects);

/// An RFC 3161 TSA on 127.0.0.1 built on OpenSSL's TS API with the fixture's TSA key, serving
/// on a thread until destroyed. `fail_with_status` makes it answer HTTP errors instead.
class LoopbackTsa {
 public:
  explicit LoopbackTsa(int fail_with_status = 0);
  ~LoopbackTsa();
  LoopbackTsa(const LoopbackTsa&) = delete;
  LoopbackTsa& operator=(const LoopbackTsa&) = delete;
  LoopbackTsa(LoopbackTsa&&) = delete;
  LoopbackTsa& operator=(LoopbackTsa&&) = delete;
  [[nodiscard]] std::string url() const;
  [[nodiscard]] int requests() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// `openssl ocsp` as a responder on a free loopback port for the fixture's index.txt, started
/// as a child process and stopped (by its pid) at destruction.
class OcspResponder {
 public:
  OcspResponder();
  ~OcspResponder();
  OcspResponder(const OcspResponder&) = delete;
  OcspResponder& operator=(const OcspResponder&) = delete;
  OcspResponder(OcspResponder&&) = delete;
  OcspResponder& operator=(OcspResponder&&) = delete;
  [[nodiscard]] std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/";
  }
  void stop();

 private:
  int port_ = 0;
  int pid_ = -1;
};

}  // namespace kyso::test
