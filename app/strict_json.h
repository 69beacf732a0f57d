#pragma once
// JSON text as Sluice reads it from outside (request bodies, the configuration file): parsed by
// nlohmann::json, except that an object naming a member twice is refused. Parsers disagree on
// which of the two values wins (nlohmann's keeps the last, others the first), so a proxy or an
// editor that checked one of them must not see a different document than we do.
//
// Thread safety: free function; thread-safe.

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string_view>

#include "common/result.h"

namespace sluice::app {

// Arrays and objects nested deeper than this are refused while parsing. Copying, printing and
// walking a parsed value recurse once per level: a body of 200,000 '[' (400 KB) overflowed the
// stack of the request's thread and ended the server. 512 is far past any document a route
// takes (a vector search filter at its own limit of 100 levels is about 200 deep).
inline constexpr std::size_t kMaxJsonDepth = 512;

// Parses `text`. `subject` names the text in messages ("request body"), or is empty when the
// caller adds its own context. Errors, all kInvalidArgument:
//   "malformed JSON[ in <subject>] at byte N: ..."           not JSON
//   "[malformed JSON in <subject>: ]/model/path: the name 'path' appears twice in one object"
//                                                            a repeated member, by its JSON
//                                                            pointer (RFC 6901)
//   "JSON[ in <subject>] that cannot be read: ..."           a number beyond double's range
//   "JSON[ in <subject>] nested more than 512 deep"          arrays and objects past
//                                                            kMaxJsonDepth
Result<nlohmann::json> parse_json_unique_names(std::string_view text, std::string_view subject);

}  // namespace sluice::app
