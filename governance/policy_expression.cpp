#include "governance/policy_expression.h"

#include <algorithm>
#include <cctype>

namespace sluice::governance {
namespace {

constexpr std::size_t kMaxText = 4096;
constexpr int kMaxDepth = 64;

enum class TokenKind { kWord, kQuotedIdentifier, kString, kNumber, kSymbol, kEnd };

struct Token {
    TokenKind kind = TokenKind::kEnd;
    std::string text;  // words as written; strings and quoted identifiers unquoted
    std::size_t at = 0;
};

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

Result<std::vector<Token>> tokenize(std::string_view text) {
    std::vector<Token> tokens;
    std::size_t i = 0;
    auto error = [&](const std::string& what) {
        return invalid_argument("expression, at character " + std::to_string(i + 1) + ": " +
                                what);
    };
    while (i < text.size()) {
        char c = text[i];
        if (std::isspace(static_cast<unsigned char>(c))) {
            ++i;
            continue;
        }
        Token token;
        token.at = i;
        if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
            std::size_t start = i;
            while (i < text.size() &&
                   (std::isalnum(static_cast<unsigned char>(text[i])) || text[i] == '_')) {
                ++i;
            }
            token.kind = TokenKind::kWord;
            token.text = std::string(text.substr(start, i - start));
        } else if (std::isdigit(static_cast<unsigned char>(c))) {
            std::size_t start = i;
            bool dot = false;
            while (i < text.size() &&
                   (std::isdigit(static_cast<unsigned char>(text[i])) || (text[i] == '.' && !dot))) {
                dot = dot || text[i] == '.';
                ++i;
            }
            if (i < text.size() && (std::isalpha(static_cast<unsigned char>(text[i])) || text[i] == '_')) {
                return error("a number runs into a name");
            }
            token.kind = TokenKind::kNumber;
            token.text = std::string(text.substr(start, i - start));
        } else if (c == '\'' || c == '"' || c == '`') {
            char quote = c;
            ++i;
            std::string value;
            while (true) {
                if (i >= text.size()) {
                    return error(std::string("unterminated ") + (quote == '\'' ? "string" : "name"));
                }
                if (text[i] == quote) {
                    if (i + 1 < text.size() && text[i + 1] == quote) {
                        value += quote;  // a doubled quote stands for itself
                        i += 2;
                        continue;
                    }
                    ++i;
                    break;
                }
                value += text[i++];
            }
            token.kind = quote == '\'' ? TokenKind::kString : TokenKind::kQuotedIdentifier;
            token.text = std::move(value);
        } else {
            static constexpr std::string_view kTwo[] = {"<=", ">=", "<>", "!="};
            std::string_view two = text.substr(i, 2);
            bool matched = false;
            for (std::string_view symbol : kTwo) {
                if (two == symbol) {
                    token.text = std::string(symbol);
                    i += 2;
                    matched = true;
                    break;
                }
            }
            if (!matched) {
                if (std::string_view("=<>(),").find(c) == std::string_view::npos) {
                    return error(std::string("unexpected character '") + c + "'");
                }
                token.text = std::string(1, c);
                ++i;
            }
            token.kind = TokenKind::kSymbol;
        }
        tokens.push_back(std::move(token));
    }
    tokens.push_back(Token{TokenKind::kEnd, "", text.size()});
    return tokens;
}

}  // namespace

struct PolicyExpression::Node {
    enum class Kind {
        kColumn,
        kLiteral,
        kBoolean,  // TRUE / FALSE
        kCurrentUser,
        kGroupMember,
        kNot,
        kAnd,
        kOr,
        kCompare,
        kIn,
        kIsNull,
        kCase,
    };
    Kind kind = Kind::kLiteral;
    std::string text;  // column, operator, group
    SqlValue value{nullptr};
    bool negated = false;
    bool has_else = false;
    std::vector<std::shared_ptr<const Node>> children;

    bool is_condition() const {
        switch (kind) {
            case Kind::kBoolean:
            case Kind::kGroupMember:
            case Kind::kNot:
            case Kind::kAnd:
            case Kind::kOr:
            case Kind::kCompare:
            case Kind::kIn:
            case Kind::kIsNull: return true;
            default: return false;
        }
    }
};

namespace {

using Node = PolicyExpression::Node;
using NodePtr = std::shared_ptr<const Node>;

class Parser {
public:
    Parser(std::vector<Token> tokens, const std::vector<std::string>& columns)
        : tokens_(std::move(tokens)), columns_(columns) {}

    Result<NodePtr> parse_all() {
        SLUICE_ASSIGN_OR_RETURN(NodePtr root, parse_or(0));
        if (peek().kind != TokenKind::kEnd) {
            return expected("the end of the expression");
        }
        return root;
    }

    std::vector<std::string> used;

private:
    const Token& peek() const { return tokens_[at_]; }
    bool is_word(std::string_view word) const {
        return peek().kind == TokenKind::kWord && lower(peek().text) == word;
    }
    bool is_symbol(std::string_view symbol) const {
        return peek().kind == TokenKind::kSymbol && peek().text == symbol;
    }
    Status expected(const std::string& what) const {
        const Token& t = peek();
        std::string found = t.kind == TokenKind::kEnd ? "the end" : "'" + t.text + "'";
        return invalid_argument("expression, at character " + std::to_string(t.at + 1) +
                                ": expected " + what + ", found " + found);
    }
    Status take_symbol(std::string_view symbol) {
        if (!is_symbol(symbol)) {
            return expected(std::string("'").append(symbol).append("'"));
        }
        ++at_;
        return Status();
    }
    Status take_word(std::string_view word) {
        if (!is_word(word)) {
            return expected(std::string(word));
        }
        ++at_;
        return Status();
    }
    Status deeper(int depth) const {
        if (depth > kMaxDepth) {
            return invalid_argument("expression nests deeper than " + std::to_string(kMaxDepth) +
                                    " levels");
        }
        return Status();
    }
    static Status need_condition(const NodePtr& node, std::string_view where) {
        if (!node->is_condition()) {
            return invalid_argument("expression: " + std::string(where) +
                                    " needs a condition, not a value");
        }
        return Status();
    }

    Result<NodePtr> binary(Node::Kind kind, NodePtr left, NodePtr right) {
        auto node = std::make_shared<Node>();
        node->kind = kind;
        node->children = {std::move(left), std::move(right)};
        return NodePtr(node);
    }

    Result<NodePtr> parse_or(int depth) {
        SLUICE_RETURN_IF_ERROR(deeper(depth));
        SLUICE_ASSIGN_OR_RETURN(NodePtr left, parse_and(depth + 1));
        while (is_word("or")) {
            ++at_;
            SLUICE_ASSIGN_OR_RETURN(NodePtr right, parse_and(depth + 1));
            SLUICE_RETURN_IF_ERROR(need_condition(left, "OR"));
            SLUICE_RETURN_IF_ERROR(need_condition(right, "OR"));
            SLUICE_ASSIGN_OR_RETURN(left, binary(Node::Kind::kOr, left, right));
        }
        return left;
    }

    Result<NodePtr> parse_and(int depth) {
        SLUICE_RETURN_IF_ERROR(deeper(depth));
        SLUICE_ASSIGN_OR_RETURN(NodePtr left, parse_not(depth + 1));
        while (is_word("and")) {
            ++at_;
            SLUICE_ASSIGN_OR_RETURN(NodePtr right, parse_not(depth + 1));
            SLUICE_RETURN_IF_ERROR(need_condition(left, "AND"));
            SLUICE_RETURN_IF_ERROR(need_condition(right, "AND"));
            SLUICE_ASSIGN_OR_RETURN(left, binary(Node::Kind::kAnd, left, right));
        }
        return left;
    }

    Result<NodePtr> parse_not(int depth) {
        SLUICE_RETURN_IF_ERROR(deeper(depth));
        if (is_word("not")) {
            ++at_;
            SLUICE_ASSIGN_OR_RETURN(NodePtr operand, parse_not(depth + 1));
            SLUICE_RETURN_IF_ERROR(need_condition(operand, "NOT"));
            auto node = std::make_shared<Node>();
            node->kind = Node::Kind::kNot;
            node->children = {operand};
            return NodePtr(node);
        }
        return parse_predicate(depth + 1);
    }

    Result<NodePtr> parse_predicate(int depth) {
        SLUICE_ASSIGN_OR_RETURN(NodePtr left, parse_value(depth + 1));
        static constexpr std::string_view kComparisons[] = {"=", "!=", "<>", "<", "<=", ">", ">="};
        for (std::string_view op : kComparisons) {
            if (is_symbol(op)) {
                ++at_;
                SLUICE_ASSIGN_OR_RETURN(NodePtr right, parse_value(depth + 1));
                auto node = std::make_shared<Node>();
                node->kind = Node::Kind::kCompare;
                node->text = op == "!=" ? "<>" : std::string(op);
                node->children = {left, right};
                return NodePtr(node);
            }
        }
        bool negated = false;
        if (is_word("not")) {
            ++at_;
            negated = true;
            if (!is_word("in")) {
                return expected("IN after NOT");
            }
        }
        if (is_word("in")) {
            ++at_;
            SLUICE_RETURN_IF_ERROR(take_symbol("("));
            auto node = std::make_shared<Node>();
            node->kind = Node::Kind::kIn;
            node->negated = negated;
            node->children = {left};
            while (true) {
                SLUICE_ASSIGN_OR_RETURN(NodePtr item, parse_value(depth + 1));
                node->children.push_back(item);
                if (is_symbol(",")) {
                    ++at_;
                    continue;
                }
                SLUICE_RETURN_IF_ERROR(take_symbol(")"));
                break;
            }
            return NodePtr(node);
        }
        if (is_word("is")) {
            ++at_;
            auto node = std::make_shared<Node>();
            node->kind = Node::Kind::kIsNull;
            if (is_word("not")) {
                ++at_;
                node->negated = true;
            }
            SLUICE_RETURN_IF_ERROR(take_word("null"));
            node->children = {left};
            return NodePtr(node);
        }
        return left;
    }

    Result<NodePtr> parse_value(int depth) {
        SLUICE_RETURN_IF_ERROR(deeper(depth));
        const Token token = peek();
        auto node = std::make_shared<Node>();
        switch (token.kind) {
            case TokenKind::kString:
                ++at_;
                node->kind = Node::Kind::kLiteral;
                node->value = token.text;
                return NodePtr(node);
            case TokenKind::kNumber:
                ++at_;
                node->kind = Node::Kind::kLiteral;
                if (token.text.find('.') != std::string::npos) {
                    node->value = std::stod(token.text);
                } else if (token.text.size() > 18) {
                    return invalid_argument("expression: number " + token.text + " is too large");
                } else {
                    node->value = static_cast<std::int64_t>(std::stoll(token.text));
                }
                return NodePtr(node);
            case TokenKind::kQuotedIdentifier: ++at_; return column(token);
            case TokenKind::kSymbol:
                if (token.text == "(") {
                    ++at_;
                    SLUICE_ASSIGN_OR_RETURN(NodePtr inner, parse_or(depth + 1));
                    SLUICE_RETURN_IF_ERROR(take_symbol(")"));
                    return inner;
                }
                return expected("a value");
            case TokenKind::kEnd: return expected("a value");
            case TokenKind::kWord: break;
        }
        std::string word = lower(token.text);
        if (word == "true" || word == "false") {
            ++at_;
            node->kind = Node::Kind::kBoolean;
            node->value = std::int64_t{word == "true" ? 1 : 0};
            return NodePtr(node);
        }
        if (word == "null") {
            ++at_;
            node->kind = Node::Kind::kLiteral;
            return NodePtr(node);
        }
        if (word == "case") {
            ++at_;
            return parse_case(depth + 1);
        }
        if (at_ + 1 < tokens_.size() && tokens_[at_ + 1].kind == TokenKind::kSymbol &&
            tokens_[at_ + 1].text == "(") {
            at_ += 2;
            if (word == "current_user") {
                SLUICE_RETURN_IF_ERROR(take_symbol(")"));
                node->kind = Node::Kind::kCurrentUser;
                return NodePtr(node);
            }
            if (word == "is_account_group_member") {
                if (peek().kind != TokenKind::kString) {
                    return expected("a group name in quotes");
                }
                node->kind = Node::Kind::kGroupMember;
                node->text = peek().text;
                ++at_;
                SLUICE_RETURN_IF_ERROR(take_symbol(")"));
                return NodePtr(node);
            }
            return invalid_argument("expression: function '" + token.text +
                                    "' is not allowed; only current_user() and "
                                    "is_account_group_member('group')");
        }
        ++at_;
        return column(token);
    }

    Result<NodePtr> parse_case(int depth) {
        auto node = std::make_shared<Node>();
        node->kind = Node::Kind::kCase;
        if (!is_word("when")) {
            return expected("WHEN");
        }
        while (is_word("when")) {
            ++at_;
            SLUICE_ASSIGN_OR_RETURN(NodePtr condition, parse_or(depth + 1));
            SLUICE_RETURN_IF_ERROR(need_condition(condition, "WHEN"));
            SLUICE_RETURN_IF_ERROR(take_word("then"));
            SLUICE_ASSIGN_OR_RETURN(NodePtr value, parse_or(depth + 1));
            node->children.push_back(condition);
            node->children.push_back(value);
        }
        if (is_word("else")) {
            ++at_;
            SLUICE_ASSIGN_OR_RETURN(NodePtr otherwise, parse_or(depth + 1));
            node->children.push_back(otherwise);
            node->has_else = true;
        }
        SLUICE_RETURN_IF_ERROR(take_word("end"));
        return NodePtr(node);
    }

    Result<NodePtr> column(const Token& token) {
        static constexpr std::string_view kReserved[] = {
            "and", "or", "not", "in", "is", "case", "when", "then", "else", "end", "select",
            "from", "where"};
        std::string word = lower(token.text);
        if (token.kind == TokenKind::kWord) {
            for (std::string_view reserved : kReserved) {
                if (word == reserved) {
                    return invalid_argument("expression, at character " +
                                            std::to_string(token.at + 1) + ": unexpected '" +
                                            token.text + "'");
                }
            }
        }
        // Column names compare case-insensitively, as SQLite's do; the table's spelling is used.
        for (const std::string& c : columns_) {
            if (lower(c) == word) {
                auto node = std::make_shared<Node>();
                node->kind = Node::Kind::kColumn;
                node->text = c;
                if (std::find(used.begin(), used.end(), c) == used.end()) {
                    used.push_back(c);
                }
                return NodePtr(node);
            }
        }
        return invalid_argument("expression: '" + token.text + "' is not a column of the table");
    }

    std::vector<Token> tokens_;
    const std::vector<std::string>& columns_;
    std::size_t at_ = 0;
};

void emit(const Node& node, const PolicySubject& subject, SqlFragment& out) {
    using Kind = Node::Kind;
    switch (node.kind) {
        case Kind::kColumn: out.sql += quote_identifier(node.text); return;
        case Kind::kLiteral:
            if (std::holds_alternative<std::nullptr_t>(node.value)) {
                out.sql += "NULL";
                return;
            }
            out.sql += "?";
            out.params.push_back(node.value);
            return;
        case Kind::kBoolean:
            out.sql += "(? = 1)";
            out.params.push_back(node.value);
            return;
        case Kind::kCurrentUser:
            out.sql += "?";
            out.params.emplace_back(subject.user);
            return;
        case Kind::kGroupMember: {
            bool member = std::find(subject.groups.begin(), subject.groups.end(), node.text) !=
                          subject.groups.end();
            out.sql += "(? = 1)";
            out.params.emplace_back(std::int64_t{member ? 1 : 0});
            return;
        }
        case Kind::kNot:
            out.sql += "(NOT ";
            emit(*node.children[0], subject, out);
            out.sql += ")";
            return;
        case Kind::kAnd:
        case Kind::kOr:
            out.sql += "(";
            emit(*node.children[0], subject, out);
            out.sql += node.kind == Kind::kAnd ? " AND " : " OR ";
            emit(*node.children[1], subject, out);
            out.sql += ")";
            return;
        case Kind::kCompare:
            out.sql += "(";
            emit(*node.children[0], subject, out);
            out.sql += " " + node.text + " ";  // from the parser's whitelist
            emit(*node.children[1], subject, out);
            out.sql += ")";
            return;
        case Kind::kIn:
            out.sql += "(";
            emit(*node.children[0], subject, out);
            out.sql += node.negated ? " NOT IN (" : " IN (";
            for (std::size_t i = 1; i < node.children.size(); ++i) {
                out.sql += i > 1 ? ", " : "";
                emit(*node.children[i], subject, out);
            }
            out.sql += "))";
            return;
        case Kind::kIsNull:
            out.sql += "(";
            emit(*node.children[0], subject, out);
            out.sql += node.negated ? " IS NOT NULL)" : " IS NULL)";
            return;
        case Kind::kCase: {
            out.sql += "(CASE";
            std::size_t pairs = (node.children.size() - (node.has_else ? 1 : 0)) / 2;
            for (std::size_t i = 0; i < pairs; ++i) {
                out.sql += " WHEN ";
                emit(*node.children[2 * i], subject, out);
                out.sql += " THEN ";
                emit(*node.children[2 * i + 1], subject, out);
            }
            if (node.has_else) {
                out.sql += " ELSE ";
                emit(*node.children.back(), subject, out);
            }
            out.sql += " END)";
            return;
        }
    }
}

}  // namespace

std::string quote_identifier(std::string_view name) {
    std::string out = "\"";
    for (char c : name) {
        out += c;
        if (c == '"') {
            out += '"';
        }
    }
    return out + "\"";
}

PolicyExpression::PolicyExpression(std::string text, std::shared_ptr<const Node> root,
                                   std::vector<std::string> columns_used)
    : text_(std::move(text)), root_(std::move(root)), columns_used_(std::move(columns_used)) {}

Result<PolicyExpression> PolicyExpression::parse(std::string_view text,
                                                 const std::vector<std::string>& columns,
                                                 PolicyKind kind) {
    if (text.empty() || text.size() > kMaxText) {
        return invalid_argument("expression must have 1-" + std::to_string(kMaxText) +
                                " characters, found " + std::to_string(text.size()));
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<Token> tokens, tokenize(text));
    Parser parser(std::move(tokens), columns);
    SLUICE_ASSIGN_OR_RETURN(NodePtr root, parser.parse_all());
    if (kind == PolicyKind::kRowFilter && !root->is_condition()) {
        return invalid_argument("a row filter must be a condition (a comparison, IN, IS NULL, "
                                "AND/OR/NOT or is_account_group_member), not a value");
    }
    return PolicyExpression(std::string(text), std::move(root), std::move(parser.used));
}

SqlFragment PolicyExpression::compile(const PolicySubject& subject) const {
    SqlFragment out;
    emit(*root_, subject, out);
    return out;
}

}  // namespace sluice::governance
