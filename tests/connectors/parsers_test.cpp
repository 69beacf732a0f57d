#include "connectors/parsers.h"

#include <doctest/doctest.h>

#include "pdf_fixture.h"

using namespace sluice::connectors;
using nlohmann::json;
using sluice::StatusCode;

TEST_CASE("parsers: formats by extension") {
    CHECK(format_for_path("a/b/readme.MD") == Format::kMarkdown);
    CHECK(format_for_path("page.htm") == Format::kHtml);
    CHECK(format_for_path("x.ndjson") == Format::kJsonl);
    CHECK(format_for_path("notes.txt") == Format::kText);
    CHECK(format_for_path("archive.tar.gz") == Format::kUnknown);
    CHECK(format_for_path("dir.d/Makefile") == Format::kUnknown);
}

TEST_CASE("parsers: markdown keeps headings as structure, not inside code") {
    const std::string text =
        "# Install Guide\n\nIntro text.\n\n## Linux ##\n\n```bash\n# not a heading\n```\n\n"
        "Windows\n-------\n\n#hashtag is not a heading\n    # indented code\n### Done\n";
    Document doc = parse_markdown(text);
    CHECK(doc.text == text);
    CHECK(doc.metadata["title"] == "Install Guide");
    const json& headings = doc.metadata["headings"];
    REQUIRE(headings.size() == 4);
    CHECK(headings[0] == json{{"level", 1}, {"text", "Install Guide"}, {"offset", 0}});
    CHECK(headings[1]["text"] == "Linux");
    CHECK(headings[1]["level"] == 2);
    CHECK(headings[2]["text"] == "Windows");
    CHECK(headings[2]["level"] == 2);
    CHECK(text.substr(headings[2]["offset"].get<std::size_t>(), 7) == "Windows");
    CHECK(headings[3]["text"] == "Done");
    CHECK(headings[3]["level"] == 3);
}

TEST_CASE("parsers: html strips tags, scripts and styles and keeps title and headings") {
    const std::string html =
        "<!DOCTYPE html><html><HEAD><title>Q3 &amp; Q4 Report</title>"
        "<meta charset=utf-8><style>body { color: red }</style>"
        "<script>var s = '</div><h1>fake</h1>';</script></head>"
        "<body><!-- hidden comment --><h1 class=\"x\">Revenue</h1>"
        "<p>Sales grew <b>12</b>% in   Europe&nbsp;and&#x20;Asia &lt;3 &#8364;</p>"
        "<div data-x=\"a > b\">Next <a href='#'>link</a></div>"
        "<noscript>enable js</noscript><h2>Costs</h2><p>Flat.<br>Stable.</p>"
        "<p>5 < 6 & 7</p><script>unterminated";
    Document doc = parse_html(html);
    CHECK(doc.metadata["title"] == "Q3 & Q4 Report");
    CHECK(doc.text ==
          "Revenue\nSales grew 12% in Europe\u00a0and Asia <3 \u20ac\nNext link\nCosts\n"
          "Flat.\nStable.\n5 < 6 & 7");
    const json& headings = doc.metadata["headings"];
    REQUIRE(headings.size() == 2);
    CHECK(headings[0] == json{{"level", 1}, {"text", "Revenue"}, {"offset", 0}});
    CHECK(headings[1]["text"] == "Costs");
    CHECK(doc.text.substr(headings[1]["offset"].get<std::size_t>(), 5) == "Costs");
}

TEST_CASE("parsers: pdf text per page with page starts; a corrupt pdf is an error") {
    const std::string pdf =
        sluice::testing::make_pdf({"Hello from page one", "Second page text"}, "Handbook");
    auto doc = parse_pdf(pdf);
    REQUIRE_MESSAGE(doc.ok(), doc.status().to_string());
    CHECK(doc->metadata["pages"] == 2);
    CHECK(doc->metadata["title"] == "Handbook");
    const json& starts = doc->metadata["page_starts"];
    REQUIRE(starts.size() == 2);
    CHECK(starts[0] == 0);
    const std::size_t second = starts[1].get<std::size_t>();
    CHECK(doc->text.substr(0, second).find("Hello from page one") != std::string::npos);
    CHECK(doc->text.substr(second).find("Second page text") != std::string::npos);
    CHECK(doc->text[second - 1] == '\f');
    // One form feed between pages, none at the end.
    CHECK(std::count(doc->text.begin(), doc->text.end(), '\f') == 1);
    CHECK(doc->text.back() != '\f');

    CHECK(parse_pdf("not a pdf at all").status().code() == StatusCode::kInvalidArgument);
    std::string damaged = "%PDF-1.4\n" + std::string(300, '\x07') + "\n%%EOF\n";
    auto bad = parse_pdf(damaged);
    CHECK(bad.status().code() == StatusCode::kInvalidArgument);
    auto truncated = parse_pdf(pdf.substr(0, 40));
    CHECK_FALSE(truncated.ok());
}

TEST_CASE("parsers: csv with quotes, line breaks, bad rows and duplicate keys") {
    RowMapping mapping;
    mapping.key = "id";
    mapping.text = {"title", "body"};
    mapping.metadata = {"team"};
    mapping.acl_groups = "readers";
    const std::string csv =
        "\xEF\xBB\xBFid,title,body,team,readers\r\n"
        "1,Setup,\"Run \"\"make\"\", then test\",infra,\"eng,ops\"\r\n"
        "2,Multi,\"line one\nline two\",docs,\n"
        "3,Short row\n"
        "1,Duplicate,x,y,z\n"
        "\n"
        ",No key,x,y,z\n"
        "4,Last,\"never closed,q,r\n";
    auto parsed = parse_csv(csv, mapping);
    REQUIRE(parsed.ok());
    REQUIRE(parsed->rows.size() == 2);
    CHECK(parsed->rows[0].key == "1");
    CHECK(parsed->rows[0].document.text == "title: Setup\nbody: Run \"make\", then test\n");
    CHECK(parsed->rows[0].document.metadata["team"] == "infra");
    CHECK(parsed->rows[0].document.acl.groups == std::vector<std::string>{"eng", "ops"});
    CHECK(parsed->rows[1].document.text == "title: Multi\nbody: line one\nline two\n");
    REQUIRE(parsed->errors.size() == 4);
    CHECK(parsed->errors[0].where == "line 5");
    CHECK(parsed->errors[0].message == "2 fields, expected 5");
    CHECK(parsed->errors[1].message.find("duplicate key '1'") != std::string::npos);
    CHECK(parsed->errors[2].where == "line 8");
    CHECK(parsed->errors[3].message == "unterminated quoted field");

    mapping.key = "missing";
    CHECK(parse_csv(csv, mapping).status().code() == StatusCode::kInvalidArgument);
    CHECK(parse_csv("", mapping).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("parsers: declared metadata types read csv text as numbers and booleans") {
    auto mapping = row_mapping_from_json(
        json{{"key", "id"},
             {"text", {"title"}},
             {"metadata", {"priority", "price", "done", "zip"}},
             {"types",
              {{"priority", "integer"}, {"price", "real"}, {"done", "boolean"}, {"zip", "text"}}}},
        "rows");
    REQUIRE_MESSAGE(mapping.ok(), mapping.status().to_string());
    CHECK(to_json(*mapping)["types"]["done"] == "boolean");
    const std::string csv =
        "id,title,priority,price,done,zip\n"
        "1,Setup, 3 ,4.50,TRUE,02134\n"
        "2,Docs,-12,1e3,no,\n"
        "3,Empty,,,,x\n"
        "4,Bad,3.5,1,yes,x\n"
        "5,Bad,1,abc,yes,x\n"
        "6,Bad,1,1,maybe,x\n"
        "7,Big,99999999999999999999,1,1,x\n";
    auto parsed = parse_csv(csv, *mapping);
    REQUIRE(parsed.ok());
    REQUIRE(parsed->rows.size() == 3);
    const json& first = parsed->rows[0].document.metadata;
    CHECK(first["priority"] == 3);
    CHECK(first["priority"].is_number_integer());
    CHECK(first["price"] == 4.5);
    CHECK(first["done"] == true);
    CHECK(first["zip"] == "02134");  // text keeps its leading zero
    const json& second = parsed->rows[1].document.metadata;
    CHECK(second["priority"] == -12);
    CHECK(second["price"] == 1000.0);
    CHECK(second["done"] == false);
    CHECK(second["zip"] == "");
    const json& empty = parsed->rows[2].document.metadata;
    CHECK(empty["priority"].is_null());
    CHECK(empty["price"].is_null());
    CHECK(empty["done"].is_null());
    REQUIRE(parsed->errors.size() == 4);
    CHECK(parsed->errors[0].where == "line 5");
    CHECK(parsed->errors[0].message == "column 'priority': expected an integer, found '3.5'");
    CHECK(parsed->errors[1].message == "column 'price': expected a real, found 'abc'");
    CHECK(parsed->errors[2].message == "column 'done': expected a boolean, found 'maybe'");
    CHECK(parsed->errors[3].message.starts_with("column 'priority': expected an integer"));

    // JSON rows: text is read the same way; a value of another JSON type must be of the type.
    auto rows = parse_json_rows(
        R"([{"id": 1, "title": "a", "priority": "7", "price": 2, "done": true},
            {"id": 2, "title": "b", "priority": true}])",
        *mapping, false);
    REQUIRE(rows.ok());
    REQUIRE(rows->rows.size() == 1);
    CHECK(rows->rows[0].document.metadata["priority"] == 7);
    CHECK(rows->rows[0].document.metadata["price"].is_number_float());
    REQUIRE(rows->errors.size() == 1);
    CHECK(rows->errors[0].message == "column 'priority': expected an integer, found 'true'");

    // Only metadata columns take a type, and only the four types; tables have their own.
    CHECK(row_mapping_from_json(json{{"key", "id"}, {"types", {{"title", "integer"}}}}, "rows")
              .status()
              .message() ==
          "rows.types.title: only metadata columns take a type; 'title' is "
          "not in metadata");
    CHECK(row_mapping_from_json(json{{"metadata", {"n"}}, {"types", {{"n", "int"}}}}, "rows")
              .status()
              .message() ==
          "rows.types.n: expected \"integer\", \"real\", \"boolean\" or \"text\"");
    CHECK(table_mappings_from_json(json{{"tables",
                                         {{{"table", "t"},
                                           {"key", "id"},
                                           {"metadata", {"n"}},
                                           {"types", {{"n", "real"}}}}}}})
              .status()
              .message() == "tables[0].types: a table's columns have the database's own types");
}

TEST_CASE("parsers: json arrays and json lines") {
    RowMapping mapping;
    mapping.key = "sku";
    mapping.text = {"name"};
    auto array = parse_json_rows(R"([{"sku": 10, "name": "Pen"}, 3, {"sku": "A7", "name": "Ink"}])",
                                 mapping, false);
    REQUIRE(array.ok());
    REQUIRE(array->rows.size() == 2);
    CHECK(array->rows[0].key == "10");
    CHECK(array->rows[0].document.text == "Pen");
    CHECK(array->rows[1].key == "A7");
    REQUIRE(array->errors.size() == 1);
    CHECK(array->errors[0].where == "record 2");
    CHECK(parse_json_rows("{broken", mapping, false).status().code() ==
          StatusCode::kInvalidArgument);
    CHECK(parse_json_rows("\"text\"", mapping, false).status().code() ==
          StatusCode::kInvalidArgument);

    auto lines = parse_json_rows(
        "{\"sku\": 1, \"name\": \"a\"}\n\n{oops\n{\"name\": \"no key\"}\n{\"sku\": 2, \"name\": "
        "\"b\"}",
        mapping, true);
    REQUIRE(lines.ok());
    REQUIRE(lines->rows.size() == 2);
    CHECK(lines->rows[1].key == "2");
    REQUIRE(lines->errors.size() == 2);
    CHECK(lines->errors[0].where == "line 3");
    CHECK(lines->errors[1].where == "line 4");
}
