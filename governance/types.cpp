#include "governance/types.h"

#include <array>
#include <cctype>

namespace sluice::governance {
namespace {

struct PrivilegeInfo {
    Privilege privilege;
    std::string_view name;
};

constexpr std::array<PrivilegeInfo, kPrivilegeCount> kPrivileges = {{
    {Privilege::kUseCatalog, "USE_CATALOG"},
    {Privilege::kUseSchema, "USE_SCHEMA"},
    {Privilege::kSelect, "SELECT"},
    {Privilege::kModify, "MODIFY"},
    {Privilege::kExecute, "EXECUTE"},
    {Privilege::kReadVolume, "READ_VOLUME"},
    {Privilege::kWriteVolume, "WRITE_VOLUME"},
    {Privilege::kCreateCatalog, "CREATE_CATALOG"},
    {Privilege::kCreateConnection, "CREATE_CONNECTION"},
    {Privilege::kCreateSchema, "CREATE_SCHEMA"},
    {Privilege::kCreateTable, "CREATE_TABLE"},
    {Privilege::kCreateVolume, "CREATE_VOLUME"},
    {Privilege::kCreateFunction, "CREATE_FUNCTION"},
    {Privilege::kCreateModel, "CREATE_MODEL"},
    {Privilege::kCreateVectorIndex, "CREATE_VECTOR_INDEX"},
    {Privilege::kCreateAgent, "CREATE_AGENT"},
    {Privilege::kUseConnection, "USE_CONNECTION"},
    {Privilege::kManage, "MANAGE"},
    {Privilege::kBrowse, "BROWSE"},
    {Privilege::kAllPrivileges, "ALL_PRIVILEGES"},
}};

constexpr std::array<std::string_view, kSecurableTypeCount> kTypeNames = {
    "metastore", "catalog", "schema",        "table", "volume", "vector_index",
    "function",  "model",   "agent",         "connection"};

bool is_object_type(SecurableType type) {
    switch (type) {
        case SecurableType::kTable:
        case SecurableType::kVolume:
        case SecurableType::kVectorIndex:
        case SecurableType::kFunction:
        case SecurableType::kModel:
        case SecurableType::kAgent: return true;
        default: return false;
    }
}

std::string normalized(std::string_view text) {
    std::string out;
    for (char c : text) {
        out += c == ' ' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

}  // namespace

std::string_view securable_type_name(SecurableType type) {
    return kTypeNames[static_cast<std::size_t>(type)];
}

Result<SecurableType> parse_securable_type(std::string_view text) {
    std::string lower;
    for (char c : text) {
        lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (lower == "registered_model" || lower == "model_endpoint") {
        return SecurableType::kModel;
    }
    for (std::size_t i = 0; i < kTypeNames.size(); ++i) {
        if (kTypeNames[i] == lower) {
            return static_cast<SecurableType>(i);
        }
    }
    return invalid_argument("unknown securable type '" + std::string(text) +
                            "'; expected one of catalog, schema, table, volume, vector_index, "
                            "function, model, agent, connection, metastore");
}

std::optional<SecurableType> parent_type(SecurableType type) {
    if (type == SecurableType::kMetastore) {
        return std::nullopt;
    }
    if (type == SecurableType::kCatalog || type == SecurableType::kConnection) {
        return SecurableType::kMetastore;
    }
    if (type == SecurableType::kSchema) {
        return SecurableType::kCatalog;
    }
    return SecurableType::kSchema;
}

int name_depth(SecurableType type) {
    switch (type) {
        case SecurableType::kMetastore: return 0;
        case SecurableType::kCatalog:
        case SecurableType::kConnection: return 1;
        case SecurableType::kSchema: return 2;
        default: return 3;
    }
}

std::string_view privilege_name(Privilege privilege) {
    return kPrivileges[static_cast<std::size_t>(privilege)].name;
}

Result<Privilege> parse_privilege(std::string_view text) {
    std::string wanted = normalized(text);
    for (const auto& info : kPrivileges) {
        if (info.name == wanted) {
            return info.privilege;
        }
    }
    return invalid_argument("unknown privilege '" + std::string(text) + "'");
}

std::vector<Privilege> all_privileges() {
    std::vector<Privilege> out;
    for (const auto& info : kPrivileges) {
        out.push_back(info.privilege);
    }
    return out;
}

bool privilege_applies_to(Privilege privilege, SecurableType type) {
    using P = Privilege;
    using T = SecurableType;
    switch (privilege) {
        case P::kUseCatalog: return type == T::kCatalog;
        case P::kUseSchema: return type == T::kSchema;
        case P::kSelect:
        case P::kModify: return type == T::kTable || type == T::kVectorIndex;
        case P::kExecute:
            return type == T::kFunction || type == T::kModel || type == T::kAgent;
        case P::kReadVolume:
        case P::kWriteVolume: return type == T::kVolume;
        case P::kCreateCatalog:
        case P::kCreateConnection: return type == T::kMetastore;
        case P::kCreateSchema: return type == T::kCatalog;
        case P::kCreateTable:
        case P::kCreateVolume:
        case P::kCreateFunction:
        case P::kCreateModel:
        case P::kCreateVectorIndex:
        case P::kCreateAgent: return type == T::kSchema;
        case P::kUseConnection: return type == T::kConnection;
        case P::kManage:
        case P::kBrowse: return type != T::kMetastore;
        case P::kAllPrivileges: return false;
    }
    return false;
}

bool privilege_grantable_on(Privilege privilege, SecurableType type) {
    using T = SecurableType;
    if (type == T::kMetastore) {
        return privilege == Privilege::kCreateCatalog || privilege == Privilege::kCreateConnection;
    }
    if (privilege == Privilege::kAllPrivileges) {
        return true;
    }
    if (privilege_applies_to(privilege, type)) {
        return true;
    }
    // Below a catalog are schemas and objects; below a schema, objects.
    for (int i = 0; i < kSecurableTypeCount; ++i) {
        auto below = static_cast<T>(i);
        bool is_below = (type == T::kCatalog && (below == T::kSchema || is_object_type(below))) ||
                        (type == T::kSchema && is_object_type(below));
        if (is_below && privilege_applies_to(privilege, below)) {
            return true;
        }
    }
    return false;
}

bool all_privileges_implies(Privilege privilege) {
    return privilege != Privilege::kManage && privilege != Privilege::kAllPrivileges;
}

std::string_view principal_kind_name(PrincipalKind kind) {
    switch (kind) {
        case PrincipalKind::kUser: return "user";
        case PrincipalKind::kServicePrincipal: return "service_principal";
        case PrincipalKind::kGroup: return "group";
    }
    return "user";
}

Result<PrincipalKind> parse_principal_kind(std::string_view text) {
    if (text == "user") {
        return PrincipalKind::kUser;
    }
    if (text == "service_principal") {
        return PrincipalKind::kServicePrincipal;
    }
    if (text == "group") {
        return PrincipalKind::kGroup;
    }
    return invalid_argument("unknown principal kind '" + std::string(text) +
                            "'; expected user, service_principal or group");
}

namespace {

Status validate_characters(std::string_view name, std::string_view what,
                           std::string_view extra) {
    if (name.empty() || name.size() > 255) {
        return invalid_argument(std::string(what) + " must have 1 to 255 characters, found " +
                                std::to_string(name.size()));
    }
    if (name.front() == '-') {
        return invalid_argument(std::string(what) + " '" + std::string(name) +
                                "' must not start with '-'");
    }
    for (char c : name) {
        bool ok = std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' ||
                  extra.find(c) != std::string_view::npos;
        if (!ok) {
            static constexpr char kHex[] = "0123456789abcdef";
            const auto byte = static_cast<unsigned char>(c);
            std::string shown = std::isprint(byte) != 0
                                    ? std::string(1, c)
                                    : std::string("\\x") + kHex[byte >> 4] + kHex[byte & 15];
            return invalid_argument(std::string(what) + " '" + std::string(name) +
                                    "' has character '" + shown +
                                    "'; allowed are letters, digits, '_' and '-'" +
                                    (extra.empty() ? "" : " and '" + std::string(extra) + "'"));
        }
    }
    return Status();
}

}  // namespace

Status validate_identifier(std::string_view name, std::string_view what) {
    return validate_characters(name, what, "");
}

Status validate_principal_name(std::string_view name) {
    return validate_characters(name, "principal name", ".@+");
}

Result<std::vector<std::string>> split_full_name(SecurableType type,
                                                 std::string_view full_name) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (true) {
        std::size_t dot = full_name.find('.', start);
        parts.emplace_back(full_name.substr(start, dot - start));
        if (dot == std::string_view::npos) {
            break;
        }
        start = dot + 1;
    }
    int depth = name_depth(type);
    if (depth == 0) {
        return std::vector<std::string>{};
    }
    if (static_cast<int>(parts.size()) != depth) {
        return invalid_argument(std::string(securable_type_name(type)) + " name '" +
                                std::string(full_name) + "' has " +
                                std::to_string(parts.size()) + " parts, expected " +
                                std::to_string(depth));
    }
    for (const auto& part : parts) {
        SLUICE_RETURN_IF_ERROR(validate_identifier(part, "name part"));
    }
    return parts;
}

}  // namespace sluice::governance
