#include "app/strict_json.h"

#include <cstddef>
#include <string>
#include <unordered_set>
#include <vector>

namespace sluice::app {
namespace {

using nlohmann::json;

// Thrown from the parser's callback to stop at a repeated member name; caught below.
struct RepeatedName {};
// Thrown from the parser's callback to stop past kMaxJsonDepth; caught below.
struct TooDeep {};

// One object or array being read, outermost first.
struct Open {
    bool object = false;
    std::unordered_set<std::string> names;  // object: the members read so far
    std::string name;                       // object: the member being read
    std::size_t elements = 0;               // array: the elements started so far
};

// RFC 6901: '~' is written "~0" and '/' is written "~1".
std::string pointer_token(const std::string& name) {
    std::string out;
    for (char c : name) {
        if (c == '~') {
            out += "~0";
        } else if (c == '/') {
            out += "~1";
        } else {
            out += c;
        }
    }
    return out;
}

// The JSON pointer of the member `name` of the innermost open object.
std::string pointer_of(const std::vector<Open>& open, const std::string& name) {
    std::string out;
    for (std::size_t i = 0; i + 1 < open.size(); ++i) {
        out += '/';
        out += open[i].object ? pointer_token(open[i].name) : std::to_string(open[i].elements - 1);
    }
    out += '/';
    out += pointer_token(name);
    return out;
}

}  // namespace

Result<json> parse_json_unique_names(std::string_view text, std::string_view subject) {
    const std::string in_subject = subject.empty() ? "" : " in " + std::string(subject);
    std::vector<Open> open;
    std::string repeated;
    auto check_names = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
        using Event = json::parse_event_t;
        const bool starts_value =
            event == Event::value || event == Event::object_start || event == Event::array_start;
        if (starts_value && !open.empty() && !open.back().object) {
            ++open.back().elements;
        }
        if (event == Event::object_start || event == Event::array_start) {
            if (open.size() == kMaxJsonDepth) {
                throw TooDeep{};
            }
            open.push_back(Open{event == Event::object_start, {}, {}, 0});
        } else if (event == Event::object_end || event == Event::array_end) {
            open.pop_back();
        } else if (event == Event::key) {
            Open& object = open.back();
            object.name = parsed.get<std::string>();
            if (!object.names.insert(object.name).second) {
                repeated = pointer_of(open, object.name) + ": the name '" + object.name +
                           "' appears twice in one object";
                throw RepeatedName{};
            }
        }
        return true;
    };
    // nlohmann::json throws; this adapter turns its errors into a Status.
    try {
        return json::parse(text, check_names);
    } catch (const RepeatedName&) {
        return invalid_argument(subject.empty() ? repeated
                                                : "malformed JSON" + in_subject + ": " + repeated);
    } catch (const TooDeep&) {
        return invalid_argument("JSON" + in_subject + " nested more than " +
                                std::to_string(kMaxJsonDepth) + " deep");
    } catch (const json::parse_error& e) {
        return invalid_argument("malformed JSON" + in_subject + " at byte " +
                                std::to_string(e.byte) + ": " + e.what());
    } catch (const json::out_of_range& e) {
        // A number beyond double's range (1e400): well-formed JSON that no field can hold.
        return invalid_argument("JSON" + in_subject + " that cannot be read: " + e.what());
    }
}

}  // namespace sluice::app
