#pragma once
// The vocabulary of governance: securable types and their hierarchy, privileges and where they
// apply, principals, and validated three-level names (`catalog.schema.object`).
//
// Hierarchy (Unity Catalog's): the metastore holds catalogs and connections; a catalog holds
// schemas; a schema holds tables, volumes, vector indexes, functions, model endpoints and agents.
//
// Thread safety: value types and pure functions.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice::governance {

enum class SecurableType : std::uint8_t {
    kMetastore,
    kCatalog,
    kSchema,
    kTable,
    kVolume,
    kVectorIndex,
    kFunction,
    kModel,
    kAgent,
    kConnection,
};
inline constexpr int kSecurableTypeCount = 10;

// "metastore", "catalog", "schema", "table", "volume", "vector_index", "function", "model",
// "agent", "connection": the names used in REST paths (/permissions/{type}/...) and storage.
std::string_view securable_type_name(SecurableType type);
// Also accepts Unity Catalog's upper-case spellings ("TABLE") and "registered_model".
Result<SecurableType> parse_securable_type(std::string_view text);
// The type of the container: catalog and connection → metastore, schema → catalog, the
// object types → schema. nullopt for the metastore.
std::optional<SecurableType> parent_type(SecurableType type);
// How many dotted parts a full name of this type has: catalog 1, schema 2, objects 3,
// connection 1, metastore 0.
int name_depth(SecurableType type);

enum class Privilege : std::uint8_t {
    kUseCatalog,
    kUseSchema,
    kSelect,
    kModify,
    kExecute,
    kReadVolume,
    kWriteVolume,
    kCreateCatalog,
    kCreateConnection,
    kCreateSchema,
    kCreateTable,
    kCreateVolume,
    kCreateFunction,
    kCreateModel,
    kCreateVectorIndex,
    kCreateAgent,
    kUseConnection,
    kManage,
    kBrowse,
    kAllPrivileges,
};
inline constexpr int kPrivilegeCount = 20;
using PrivilegeMask = std::uint32_t;
constexpr PrivilegeMask privilege_bit(Privilege privilege) {
    return PrivilegeMask{1} << static_cast<int>(privilege);
}

// "USE_CATALOG", "SELECT", "ALL_PRIVILEGES"... (Unity Catalog's REST spelling).
std::string_view privilege_name(Privilege privilege);
// Accepts "USE_CATALOG", "USE CATALOG" and lower case.
Result<Privilege> parse_privilege(std::string_view text);
std::vector<Privilege> all_privileges();

// Whether a check for `privilege` on a securable of `type` is meaningful (SELECT on a table,
// USE_SCHEMA on a schema, CREATE_TABLE on a schema, MANAGE and BROWSE anywhere but the
// metastore). ALL_PRIVILEGES is a grant-only shorthand and never checked.
bool privilege_applies_to(Privilege privilege, SecurableType type);
// Whether `privilege` may be granted on a securable of `type`: it applies to the type or to a
// type below it (SELECT on a catalog reaches its tables). On the metastore only CREATE_CATALOG
// and CREATE_CONNECTION may be granted.
bool privilege_grantable_on(Privilege privilege, SecurableType type);
// ALL_PRIVILEGES expands to every privilege except MANAGE, which must be granted by name (the
// right to grant is kept apart from the right to use).
bool all_privileges_implies(Privilege privilege);

enum class PrincipalKind : std::uint8_t { kUser, kServicePrincipal, kGroup };
std::string_view principal_kind_name(PrincipalKind kind);
Result<PrincipalKind> parse_principal_kind(std::string_view text);

struct Principal {
    std::int64_t id = 0;
    std::string name;
    PrincipalKind kind = PrincipalKind::kUser;
    bool is_admin = false;  // a metastore admin (directly; membership in an admin group counts too)
    std::int64_t created_at_ms = 0;
};

// Identifiers: 1-255 characters of [A-Za-z0-9_-], not starting with '-'. Principal names also
// allow '.', '@' and '+' (e-mail addresses). Errors name the offending character.
Status validate_identifier(std::string_view name, std::string_view what);
Status validate_principal_name(std::string_view name);

// Splits and validates a full name for `type`: "main.sales.orders" → {"main","sales","orders"}.
Result<std::vector<std::string>> split_full_name(SecurableType type, std::string_view full_name);

}  // namespace sluice::governance
