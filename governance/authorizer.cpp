#include "governance/authorizer.h"

#include <array>
#include <chrono>
#include <unordered_map>

namespace sluice::governance {

struct Authorizer::Snapshot {
    struct Node {
        std::int64_t id = 0;
        SecurableType type = SecurableType::kMetastore;
        std::string full_name;
        int parent = -1;  // index into nodes; -1 for the metastore
        std::int64_t owner_id = 0;
    };
    struct PrincipalEntry {
        std::string name;
        PrincipalKind kind = PrincipalKind::kUser;
        bool is_admin = false;               // directly flagged
        std::vector<std::int64_t> closure;   // itself first, then every group it is inside
        std::int64_t admin_via = 0;          // the member of closure flagged admin, or 0
    };

    std::uint64_t generation = 0;
    std::vector<Node> nodes;
    std::array<std::unordered_map<std::string, int>, kSecurableTypeCount> by_name;
    std::unordered_map<std::int64_t, PrincipalEntry> principals;
    // (securable id, principal id) → privileges granted there.
    std::unordered_map<std::uint64_t, PrivilegeMask> grants;

    static std::uint64_t key(std::int64_t securable_id, std::int64_t principal_id) {
        return (static_cast<std::uint64_t>(securable_id) << 32) ^
               static_cast<std::uint64_t>(principal_id);
    }
};

namespace {

using Snapshot = Authorizer::Snapshot;

std::shared_ptr<const Snapshot> build_snapshot(const AuthzData& data) {
    auto snapshot = std::make_shared<Snapshot>();
    snapshot->generation = data.generation;

    std::unordered_map<std::int64_t, std::vector<std::int64_t>> groups_of;  // member → groups
    for (const auto& [group, member] : data.memberships) {
        groups_of[member].push_back(group);
    }
    for (const Principal& p : data.principals) {
        snapshot->principals[p.id] = Snapshot::PrincipalEntry{p.name, p.kind, p.is_admin, {}, 0};
    }
    for (auto& [id, entry] : snapshot->principals) {
        // Breadth first up the membership edges; cycles are refused on write, and `seen`
        // keeps a corrupt database from looping here.
        entry.closure.push_back(id);
        for (std::size_t i = 0; i < entry.closure.size(); ++i) {
            for (std::int64_t group : groups_of[entry.closure[i]]) {
                bool seen = false;
                for (std::int64_t known : entry.closure) {
                    seen = seen || known == group;
                }
                if (!seen) {
                    entry.closure.push_back(group);
                }
            }
        }
    }
    for (auto& [id, entry] : snapshot->principals) {
        for (std::int64_t member : entry.closure) {
            auto it = snapshot->principals.find(member);
            if (it != snapshot->principals.end() && it->second.is_admin) {
                entry.admin_via = member;
                break;
            }
        }
    }

    std::unordered_map<std::int64_t, int> index_of;
    for (const Securable& s : data.securables) {
        index_of[s.id] = static_cast<int>(snapshot->nodes.size());
        snapshot->nodes.push_back(Snapshot::Node{s.id, s.type, s.full_name, -1, s.owner_id});
    }
    for (std::size_t i = 0; i < data.securables.size(); ++i) {
        const Securable& s = data.securables[i];
        if (s.parent_id != 0) {
            snapshot->nodes[i].parent = index_of.at(s.parent_id);
        }
        snapshot->by_name[static_cast<std::size_t>(s.type)][s.full_name] = static_cast<int>(i);
    }
    for (const GrantRow& grant : data.grants) {
        snapshot->grants[Snapshot::key(grant.securable_id, grant.principal_id)] |=
            privilege_bit(grant.privilege);
    }
    return snapshot;
}

std::string describe(const Snapshot::Node& node) {
    if (node.type == SecurableType::kMetastore) {
        return "the metastore";
    }
    return std::string(securable_type_name(node.type)) + " '" + node.full_name + "'";
}

std::string describe_principal(const Snapshot& snapshot, std::int64_t id) {
    auto it = snapshot.principals.find(id);
    if (it == snapshot.principals.end()) {
        return "principal " + std::to_string(id);
    }
    return std::string(principal_kind_name(it->second.kind)) + " '" + it->second.name + "'";
}

// Finds what gives `entry` privilege P on `node_index`: the closest securable first (the object
// itself, then its schema, catalog, metastore), and on each the principal before its groups,
// ownership before grants. Returns a decision with allowed = false when nothing does.
Decision holds(const Snapshot& snapshot, const Snapshot::PrincipalEntry& entry,
               Privilege privilege, int node_index) {
    const PrivilegeMask wanted =
        privilege_bit(privilege) |
        (all_privileges_implies(privilege) ? privilege_bit(Privilege::kAllPrivileges) : 0);
    for (int at = node_index; at >= 0; at = snapshot.nodes[static_cast<std::size_t>(at)].parent) {
        const Snapshot::Node& node = snapshot.nodes[static_cast<std::size_t>(at)];
        for (std::int64_t member : entry.closure) {
            if (node.owner_id == member) {
                Decision d;
                d.allowed = true;
                d.source = DecisionSource::kOwner;
                d.on_type = node.type;
                d.on_name = node.full_name;
                d.via_principal = snapshot.principals.at(member).name;
                d.reason = "ownership of " + describe(node) + " by " +
                           describe_principal(snapshot, member);
                return d;
            }
            auto grant = snapshot.grants.find(Snapshot::key(node.id, member));
            if (grant == snapshot.grants.end() || (grant->second & wanted) == 0) {
                continue;
            }
            Decision d;
            d.allowed = true;
            d.source = DecisionSource::kGrant;
            d.on_type = node.type;
            d.on_name = node.full_name;
            d.via_principal = snapshot.principals.at(member).name;
            d.granted = (grant->second & privilege_bit(privilege)) != 0
                            ? privilege
                            : Privilege::kAllPrivileges;
            d.reason = "grant " + std::string(privilege_name(d.granted)) + " on " +
                       describe(node) + " to " + describe_principal(snapshot, member);
            return d;
        }
    }
    Decision denied;
    denied.reason = "no grant of " + std::string(privilege_name(privilege)) + " on " +
                    describe(snapshot.nodes[static_cast<std::size_t>(node_index)]) +
                    " or above to '" + entry.name + "' or its groups";
    return denied;
}

Result<Decision> decide(const Snapshot& snapshot, std::int64_t principal_id, Privilege privilege,
                        SecurableType type, const std::string& full_name) {
    auto principal = snapshot.principals.find(principal_id);
    if (principal == snapshot.principals.end()) {
        return not_found("principal id " + std::to_string(principal_id) + " does not exist");
    }
    const auto& names = snapshot.by_name[static_cast<std::size_t>(type)];
    auto found = names.find(full_name);
    if (found == names.end()) {
        return not_found(std::string(securable_type_name(type)) + " '" + full_name +
                         "' does not exist");
    }
    const Snapshot::PrincipalEntry& entry = principal->second;
    const int node_index = found->second;
    if (!privilege_applies_to(privilege, type)) {
        Decision d;
        d.reason = "privilege " + std::string(privilege_name(privilege)) +
                   " does not apply to a " + std::string(securable_type_name(type));
        return d;
    }
    if (entry.admin_via != 0) {
        Decision d;
        d.allowed = true;
        d.source = DecisionSource::kAdmin;
        d.via_principal = snapshot.principals.at(entry.admin_via).name;
        d.reason = entry.admin_via == principal_id
                       ? "'" + entry.name + "' is a metastore admin"
                       : "'" + entry.name + "' is a metastore admin through " +
                             describe_principal(snapshot, entry.admin_via);
        return d;
    }
    Decision main = holds(snapshot, entry, privilege, node_index);
    if (!main.allowed || privilege == Privilege::kBrowse) {
        return main;
    }
    for (int at = node_index; at >= 0; at = snapshot.nodes[static_cast<std::size_t>(at)].parent) {
        const Snapshot::Node& node = snapshot.nodes[static_cast<std::size_t>(at)];
        Privilege usage;
        if (node.type == SecurableType::kCatalog && privilege != Privilege::kUseCatalog) {
            usage = Privilege::kUseCatalog;
        } else if (node.type == SecurableType::kSchema && privilege != Privilege::kUseSchema) {
            usage = Privilege::kUseSchema;
        } else {
            continue;
        }
        Decision need = holds(snapshot, entry, usage, at);
        if (!need.allowed) {
            need.reason = "missing " + std::string(privilege_name(usage)) + " on " +
                          describe(node) + ": " + need.reason;
            return need;
        }
    }
    return main;
}

}  // namespace

Authorizer::Authorizer(Store& store, AuditSink& audit) : store_(store), audit_(audit) {}

Result<std::shared_ptr<const Authorizer::Snapshot>> Authorizer::current() {
    std::lock_guard lock(mutex_);
    std::uint64_t wanted = store_.generation();
    if (snapshot_ && snapshot_->generation == wanted) {
        return snapshot_;
    }
    // Rebuilt under the lock: concurrent checks wait for one rebuild rather than each doing
    // their own. A snapshot read at a later generation than `wanted` is newer still: fine.
    SLUICE_ASSIGN_OR_RETURN(AuthzData data, store_.load_authz_data());
    snapshot_ = build_snapshot(data);
    return snapshot_;
}

std::uint64_t Authorizer::snapshot_generation() {
    std::lock_guard lock(mutex_);
    return snapshot_ ? snapshot_->generation : 0;
}

Result<Decision> Authorizer::check(std::int64_t principal_id, Privilege privilege,
                                   SecurableType type, const std::string& full_name) {
    SLUICE_ASSIGN_OR_RETURN(auto snapshot, current());
    return decide(*snapshot, principal_id, privilege, type, full_name);
}

Status Authorizer::require(const RequestContext& context, Privilege privilege,
                           SecurableType type, const std::string& full_name) {
    Result<Decision> decision = check(context.principal_id, privilege, type, full_name);
    AuditEvent event = audit_event_for(context);
    event.action = "authorize:" + std::string(privilege_name(privilege));
    event.securable = std::string(securable_type_name(type)) + ":" + full_name;
    if (!decision.ok()) {
        event.result = "deny";
        event.decided_by = decision.status().message();
    } else {
        event.result = decision->allowed ? "allow" : "deny";
        event.decided_by = decision->reason;
    }
    Status audited = audit_.append(std::move(event));
    if (!audited.ok()) {
        return unavailable("authorization could not be audited: " + audited.message());
    }
    if (!decision.ok()) {
        return decision.status();
    }
    if (!decision->allowed) {
        return Status(StatusCode::kPermissionDenied,
                      "'" + context.principal + "' lacks " +
                          std::string(privilege_name(privilege)) + " on " +
                          std::string(securable_type_name(type)) + " '" + full_name +
                          "': " + decision->reason);
    }
    return Status();
}

Result<std::vector<std::pair<Privilege, Decision>>> Authorizer::effective(
    std::int64_t principal_id, SecurableType type, const std::string& full_name) {
    SLUICE_ASSIGN_OR_RETURN(auto snapshot, current());
    std::vector<std::pair<Privilege, Decision>> out;
    for (Privilege privilege : all_privileges()) {
        if (!privilege_applies_to(privilege, type)) {
            continue;
        }
        SLUICE_ASSIGN_OR_RETURN(Decision d,
                                decide(*snapshot, principal_id, privilege, type, full_name));
        out.emplace_back(privilege, std::move(d));
    }
    return out;
}

Result<std::vector<std::int64_t>> Authorizer::principal_closure(std::int64_t principal_id) {
    SLUICE_ASSIGN_OR_RETURN(auto snapshot, current());
    auto it = snapshot->principals.find(principal_id);
    if (it == snapshot->principals.end()) {
        return not_found("principal id " + std::to_string(principal_id) + " does not exist");
    }
    return it->second.closure;
}

Result<std::string> Authorizer::principal_name(std::int64_t principal_id) {
    SLUICE_ASSIGN_OR_RETURN(auto snapshot, current());
    auto it = snapshot->principals.find(principal_id);
    if (it == snapshot->principals.end()) {
        return not_found("principal id " + std::to_string(principal_id) + " does not exist");
    }
    return std::string(principal_kind_name(it->second.kind)) + " '" + it->second.name + "'";
}

Result<bool> Authorizer::is_admin(std::int64_t principal_id) {
    SLUICE_ASSIGN_OR_RETURN(auto snapshot, current());
    auto it = snapshot->principals.find(principal_id);
    if (it == snapshot->principals.end()) {
        return not_found("principal id " + std::to_string(principal_id) + " does not exist");
    }
    return it->second.admin_via != 0;
}

}  // namespace sluice::governance

namespace sluice::governance {

Result<std::vector<std::string>> Authorizer::groups_of(std::int64_t principal_id) {
    SLUICE_ASSIGN_OR_RETURN(auto snapshot, current());
    auto it = snapshot->principals.find(principal_id);
    if (it == snapshot->principals.end()) {
        return not_found("principal id " + std::to_string(principal_id) + " does not exist");
    }
    std::vector<std::string> groups;
    // closure[0] is the principal itself; the rest are the groups it is inside, at any depth.
    for (std::size_t i = 1; i < it->second.closure.size(); ++i) {
        auto group = snapshot->principals.find(it->second.closure[i]);
        if (group != snapshot->principals.end()) {
            groups.push_back(group->second.name);
        }
    }
    return groups;
}

}  // namespace sluice::governance
