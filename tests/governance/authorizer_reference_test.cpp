// The Authorizer against a brute-force reference evaluator on random worlds: random catalogs,
// owners, grants, admins and nested groups, then many random (principal, privilege, securable)
// checks per world, with random revokes and membership changes between rounds.
#include <doctest/doctest.h>

#include <functional>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "governance/authorizer.h"

using namespace sluice::governance;
using sluice::Status;

namespace {

// The reference: the rules of authorizer.h, restated as directly as possible, over plain
// containers that mirror what was written to the store.
struct World {
    struct Node {
        SecurableType type;
        std::string full_name;
        std::int64_t id;
        std::int64_t parent;  // 0 for the metastore
        std::int64_t owner;   // 0 for the metastore
    };
    std::map<std::int64_t, bool> admin;                       // principal → flagged admin
    std::set<std::pair<std::int64_t, std::int64_t>> members;  // (group, member)
    std::map<std::int64_t, Node> nodes;
    std::set<std::tuple<std::int64_t, std::int64_t, Privilege>> grants;  // (securable, principal, p)

    std::set<std::int64_t> principals_of(std::int64_t p) const {
        std::set<std::int64_t> out{p};
        std::function<void(std::int64_t)> visit = [&](std::int64_t x) {
            for (const auto& [group, member] : members) {
                if (member == x && out.insert(group).second) {
                    visit(group);
                }
            }
        };
        visit(p);
        return out;
    }

    std::vector<std::int64_t> ancestors(std::int64_t s) const {
        std::vector<std::int64_t> out;
        for (std::int64_t at = s; at != 0; at = nodes.at(at).parent) {
            out.push_back(at);
        }
        return out;
    }

    bool has(std::int64_t p, Privilege privilege, std::int64_t s) const {
        for (std::int64_t a : ancestors(s)) {
            for (std::int64_t q : principals_of(p)) {
                if (nodes.at(a).owner == q || grants.count({a, q, privilege}) > 0 ||
                    (privilege != Privilege::kManage &&
                     grants.count({a, q, Privilege::kAllPrivileges}) > 0)) {
                    return true;
                }
            }
        }
        return false;
    }

    bool allowed(std::int64_t p, Privilege privilege, std::int64_t s) const {
        if (!privilege_applies_to(privilege, nodes.at(s).type)) {
            return false;
        }
        for (std::int64_t q : principals_of(p)) {
            if (admin.at(q)) {
                return true;
            }
        }
        if (!has(p, privilege, s)) {
            return false;
        }
        if (privilege == Privilege::kBrowse) {
            return true;
        }
        for (std::int64_t a : ancestors(s)) {
            SecurableType type = nodes.at(a).type;
            if (type == SecurableType::kCatalog && privilege != Privilege::kUseCatalog &&
                !has(p, Privilege::kUseCatalog, a)) {
                return false;
            }
            if (type == SecurableType::kSchema && privilege != Privilege::kUseSchema &&
                !has(p, Privilege::kUseSchema, a)) {
                return false;
            }
        }
        return true;
    }
};

// prefix + number, by append: GCC 12 reports a false -Wrestrict on numbered("u", i).
std::string numbered(std::string prefix, int i) {
    return prefix.append(std::to_string(i));
}

constexpr std::array<SecurableType, 6> kObjectTypes = {
    SecurableType::kTable,    SecurableType::kVolume, SecurableType::kVectorIndex,
    SecurableType::kFunction, SecurableType::kModel,  SecurableType::kAgent};

struct Fixture {
    std::mt19937_64 random;
    std::unique_ptr<Store> store;
    World world;
    std::vector<std::int64_t> principal_ids;
    std::vector<std::string> principal_names;
    std::vector<std::int64_t> group_ids;
    std::vector<std::string> group_names;
    std::vector<std::int64_t> node_ids;

    explicit Fixture(std::uint64_t seed) : random(seed) {
        auto opened = Store::open(":memory:");
        REQUIRE(opened.ok());
        store = std::move(*opened);
    }

    std::size_t pick(std::size_t n) { return static_cast<std::size_t>(random() % n); }
    bool chance(int percent) { return static_cast<int>(random() % 100) < percent; }

    void add_principal(const std::string& name, PrincipalKind kind) {
        bool admin = chance(4);
        auto p = store->create_principal(name, kind, admin);
        REQUIRE(p.ok());
        world.admin[p->id] = admin;
        principal_ids.push_back(p->id);
        principal_names.push_back(name);
        if (kind == PrincipalKind::kGroup) {
            group_ids.push_back(p->id);
            group_names.push_back(name);
        }
    }

    void add_node(SecurableType type, const std::string& full_name) {
        std::int64_t owner = principal_ids[pick(principal_ids.size())];
        auto s = store->create_securable(type, full_name, owner, "", {});
        REQUIRE_MESSAGE(s.ok(), s.status().to_string());
        world.nodes[s->id] = World::Node{type, full_name, s->id, s->parent_id, owner};
        node_ids.push_back(s->id);
    }

    void build() {
        auto metastore = store->securable(SecurableType::kMetastore, "");
        REQUIRE(metastore.ok());
        world.nodes[metastore->id] =
            World::Node{SecurableType::kMetastore, "", metastore->id, 0, 0};
        node_ids.push_back(metastore->id);

        int users = 6 + static_cast<int>(pick(10));
        int groups = 3 + static_cast<int>(pick(6));
        for (int i = 0; i < users; ++i) {
            add_principal(numbered("u", i),
                          chance(80) ? PrincipalKind::kUser : PrincipalKind::kServicePrincipal);
        }
        for (int i = 0; i < groups; ++i) {
            add_principal(numbered("g", i), PrincipalKind::kGroup);
        }
        for (int i = 0; i < users + groups * 2; ++i) {
            add_membership();
        }
        int catalogs = 1 + static_cast<int>(pick(3));
        for (int c = 0; c < catalogs; ++c) {
            std::string catalog = numbered("c", c);
            add_node(SecurableType::kCatalog, catalog);
            int schemas = 1 + static_cast<int>(pick(3));
            for (int s = 0; s < schemas; ++s) {
                std::string schema = numbered(catalog + ".s", s);
                add_node(SecurableType::kSchema, schema);
                int objects = 1 + static_cast<int>(pick(5));
                for (int o = 0; o < objects; ++o) {
                    add_node(kObjectTypes[pick(kObjectTypes.size())],
                             numbered(schema + ".o", o));
                }
            }
        }
        add_node(SecurableType::kConnection, "conn");
        int grant_count = 20 + static_cast<int>(pick(80));
        for (int i = 0; i < grant_count; ++i) {
            add_grant();
        }
    }

    void add_membership() {
        std::size_t g = pick(group_ids.size());
        std::size_t m = pick(principal_ids.size());
        Status added = store->add_member(group_names[g], principal_names[m]);
        if (added.ok()) {
            world.members.insert({group_ids[g], principal_ids[m]});
        }
    }

    // Biased towards privileges that apply at or below the chosen securable.
    void add_grant() {
        std::int64_t node = node_ids[pick(node_ids.size())];
        SecurableType type = world.nodes[node].type;
        std::vector<Privilege> grantable;
        for (Privilege privilege : all_privileges()) {
            if (privilege_grantable_on(privilege, type)) {
                grantable.push_back(privilege);
            }
        }
        if (grantable.empty()) {
            return;
        }
        Privilege privilege = grantable[pick(grantable.size())];
        std::size_t p = pick(principal_ids.size());
        Status granted =
            store->update_permissions(node, type, {{principal_names[p], {privilege}, {}}}, 0);
        REQUIRE_MESSAGE(granted.ok(), granted.to_string());
        world.grants.insert({node, principal_ids[p], privilege});
    }

    void revoke_some() {
        std::vector<std::tuple<std::int64_t, std::int64_t, Privilege>> all(world.grants.begin(),
                                                                          world.grants.end());
        for (int i = 0; i < 5 && !all.empty(); ++i) {
            auto [node, principal, privilege] = all[pick(all.size())];
            std::string name;
            for (std::size_t k = 0; k < principal_ids.size(); ++k) {
                name = principal_ids[k] == principal ? principal_names[k] : name;
            }
            REQUIRE(store->update_permissions(node, world.nodes[node].type,
                                              {{name, {}, {privilege}}}, 0)
                        .ok());
            world.grants.erase({node, principal, privilege});
        }
    }

    void remove_some_membership() {
        if (world.members.empty()) {
            return;
        }
        auto it = world.members.begin();
        std::advance(it, static_cast<long>(pick(world.members.size())));
        auto [group, member] = *it;
        std::string group_name;
        std::string member_name;
        for (std::size_t k = 0; k < principal_ids.size(); ++k) {
            group_name = principal_ids[k] == group ? principal_names[k] : group_name;
            member_name = principal_ids[k] == member ? principal_names[k] : member_name;
        }
        REQUIRE(store->remove_member(group_name, member_name).ok());
        world.members.erase(it);
    }
};

}  // namespace

TEST_CASE("authorizer agrees with the brute-force reference on 1,000,000 random checks") {
    constexpr int kWorlds = 100;
    constexpr int kRounds = 4;
    constexpr int kChecksPerRound = 2500;
    DiscardingAuditSink audit;
    std::int64_t checks = 0;
    std::int64_t allows = 0;
    std::int64_t disagreements = 0;
    for (int w = 0; w < kWorlds; ++w) {
        Fixture f(0x5eed0000u + static_cast<std::uint64_t>(w));
        f.build();
        Authorizer authorizer(*f.store, audit);
        std::vector<Privilege> privileges = all_privileges();
        for (int round = 0; round < kRounds; ++round) {
            for (int i = 0; i < kChecksPerRound; ++i) {
                std::int64_t principal = f.principal_ids[f.pick(f.principal_ids.size())];
                Privilege privilege = privileges[f.pick(privileges.size())];
                const World::Node& node = f.world.nodes[f.node_ids[f.pick(f.node_ids.size())]];
                auto decision = authorizer.check(principal, privilege, node.type, node.full_name);
                REQUIRE(decision.ok());
                bool expected = f.world.allowed(principal, privilege, node.id);
                ++checks;
                allows += expected ? 1 : 0;
                if (decision->allowed != expected && disagreements++ < 5) {
                    FAIL_CHECK("world " << w << ": principal " << principal << " "
                                        << privilege_name(privilege) << " on "
                                        << securable_type_name(node.type) << " '"
                                        << node.full_name << "': authorizer "
                                        << decision->allowed << " (" << decision->reason
                                        << "), reference " << expected);
                }
            }
            // Change the world between rounds: the next check must see it.
            f.revoke_some();
            f.remove_some_membership();
            f.add_membership();
            f.add_grant();
            f.add_grant();
        }
    }
    CHECK(checks == kWorlds * kRounds * kChecksPerRound);
    CHECK(disagreements == 0);
    // Both outcomes are well represented, so agreement is not agreement on "deny".
    CHECK(allows > checks / 20);
    CHECK(allows < checks - checks / 20);
    MESSAGE("checks: " << checks << ", allowed: " << allows);
}
