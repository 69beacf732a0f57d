#pragma once
// Row filter and column mask expressions: a small, whitelisted SQL expression language, parsed
// and checked when a policy is defined and compiled per caller into a parameterised SQL fragment
// that a SQL tool appends to its query. User text is never spliced into SQL: identifiers are
// checked against the table's columns and written quoted; every literal, current_user() and
// is_account_group_member('g') becomes a bound parameter.
//
// Grammar (keywords case-insensitive):
//   expr       := or
//   or         := and ("OR" and)*
//   and        := not ("AND" not)*
//   not        := "NOT" not | predicate
//   predicate  := value [ cmp value | ["NOT"] "IN" "(" value ("," value)* ")"
//                       | "IS" ["NOT"] "NULL" ]
//   cmp        := "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//   value      := column | string | integer | decimal | "TRUE" | "FALSE" | "NULL"
//               | "current_user" "(" ")" | "is_account_group_member" "(" string ")"
//               | "CASE" ("WHEN" expr "THEN" value)+ ["ELSE" value] "END"
//               | "(" expr ")"
//   column     := [A-Za-z_][A-Za-z0-9_]* (a column of the table) | "`...`" | "\"...\""
//   string     := '...' with '' for a quote
// A row filter must be a condition (a comparison, IN, IS NULL, AND/OR/NOT, TRUE/FALSE or
// is_account_group_member); a column mask is any value (typically a CASE).
//
// Thread safety: PolicyExpression is immutable after parse().

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"

namespace sluice::governance {

using SqlValue = std::variant<std::nullptr_t, std::int64_t, double, std::string>;

// SQL text with `?` placeholders and the values to bind to them, in order.
struct SqlFragment {
    std::string sql;
    std::vector<SqlValue> params;
};

// Who the expression is evaluated for.
struct PolicySubject {
    std::string user;                 // current_user()
    std::vector<std::string> groups;  // every group the user is in, nested ones included
};

enum class PolicyKind : std::uint8_t { kRowFilter, kColumnMask };

class PolicyExpression {
public:
    struct Node;

    // kInvalidArgument naming the position and what was expected, an unknown column or
    // function, or a row filter that is not a condition.
    static Result<PolicyExpression> parse(std::string_view text,
                                          const std::vector<std::string>& columns,
                                          PolicyKind kind);

    // The fragment for `subject`: current_user() and group membership become bound values.
    SqlFragment compile(const PolicySubject& subject) const;

    const std::string& text() const { return text_; }
    // The columns the expression reads.
    const std::vector<std::string>& columns_used() const { return columns_used_; }

    PolicyExpression(std::string text, std::shared_ptr<const Node> root,
                     std::vector<std::string> columns_used);

private:
    std::string text_;
    std::shared_ptr<const Node> root_;
    std::vector<std::string> columns_used_;
};

// `"name"` with embedded quotes doubled: a safe SQL identifier.
std::string quote_identifier(std::string_view name);

}  // namespace sluice::governance
