#pragma once
/// @file
/// The agent's private files, the same seam as kyso/core/platform.hpp (issue 18,
/// docs/windows.md) in a header of its own, so that only the files using it depend on it:
/// core/src/platform/posix.cpp and windows.cpp implement it.

#include <filesystem>
#include <string_view>

namespace kyso::platform {

/// Creates the file `path` empty, only if it does not exist yet, for this user only (O_EXCL,
/// 0600; CREATE_NEW with the directory's inherited ACL). False when it exists or cannot be made.
bool create_private_file(const std::filesystem::path& path);
/// Creates the directory `path`, only if it does not exist yet, for this user only (mkdir 0700;
/// CreateDirectoryW with the parent's inherited ACL). False when it exists or cannot be made.
bool create_private_dir(const std::filesystem::path& path);
/// Makes an existing file or directory this user's only (chmod 0600 or 0700); on Windows
/// nothing: what Kyso writes sits under the user's profile, whose inherited ACL is owner-only.
void restrict_to_owner(const std::filesystem::path& path) noexcept;

/// Opens `path` for appending only (the audit log's anchors), created for this user only
/// (0600) when missing: each write lands at the end whoever else appends (O_APPEND; _wopen
/// with _O_APPEND on Windows). A descriptor for append_text and close_file, or -1.
int open_append_only(const std::filesystem::path& path) noexcept;
/// Appends `text` through a descriptor of open_append_only; false when not all of it went.
bool append_text(int fd, std::string_view text) noexcept;
void close_file(int fd) noexcept;
/// True when the file system refuses to let even its owner rewrite `path`, only append to it
/// (chattr +a on Linux); false where there is no such flag (Windows).
bool append_only_flag(const std::filesystem::path& path);

}  // namespace kyso::platform
