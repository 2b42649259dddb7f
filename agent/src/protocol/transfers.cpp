// upload.* and download.*: documents too large for one message (uploads.hpp does the work).

#include "connection.hpp"
#include "methods.hpp"

namespace kyso::agent::protocol {
namespace {

using json = nlohmann::json;

/// The params as they are: Transfers checks each method's fields itself.
const json* parse_transfer(const json& p, Connection& /*c*/) {
  return &p;
}

template <const char* Name>
void transfer(Connection& c, const Id& id, const json* params) {
  c.respond(id, c.transfers().handle(Name, *params));
}

constexpr char kUploadBegin[] = "upload.begin";
constexpr char kUploadChunk[] = "upload.chunk";
constexpr char kUploadEnd[] = "upload.end";
constexpr char kUploadAbort[] = "upload.abort";
constexpr char kDownloadChunk[] = "download.chunk";
constexpr char kDownloadEnd[] = "download.end";

const std::vector<Method> kMethods = {
    method(kUploadBegin, Trust::Trusted, false, parse_transfer, transfer<kUploadBegin>),
    method(kUploadChunk, Trust::Trusted, false, parse_transfer, transfer<kUploadChunk>),
    method(kUploadEnd, Trust::Trusted, false, parse_transfer, transfer<kUploadEnd>),
    method(kUploadAbort, Trust::Trusted, false, parse_transfer, transfer<kUploadAbort>),
    method(kDownloadChunk, Trust::Trusted, false, parse_transfer, transfer<kDownloadChunk>),
    method(kDownloadEnd, Trust::Trusted, false, parse_transfer, transfer<kDownloadEnd>),
};

}  // namespace

std::span<const Method> transfer_methods() {
  return kMethods;
}

}  // namespace kyso::agent::protocol
