// parse_html against HTML5's reading of character references, attribute quoting and tables.
// The overall shape of its output (title, headings, hidden elements) is in parsers_test.cpp.
#include <doctest/doctest.h>

#include <string>

#include "connectors/detail/html_entities.h"
#include "connectors/parsers.h"

using namespace sluice::connectors;
using nlohmann::json;

TEST_CASE("html: every HTML5 named reference, with and without ';' where HTML5 allows it") {
    // Decoded: names from the full table (eacute, hellip, NotEqualTilde: two code points,
    // fjlig: two letters), and the legacy names HTML5 also reads without ';' (eacute, copy,
    // amp, not, so "&notit;" is "¬it;"). Kept as written: names outside the table, and names
    // that need their ';' (hellip).
    Document doc = parse_html(
        "<p>caf&eacute; &mdash; wait&hellip; &NotEqualTilde; &fjlig;ord &copy 2024 &amp co "
        "&notit; d&eacute &hellip &nosuch; &ThisIsNotAnEntity; AT&T "
        "&CounterClockwiseContourIntegral;"
        "</p>");
    CHECK(doc.text ==
          "caf\u00e9 \u2014 wait\u2026 \u2242\u0338 fjord \u00a9 2024 & co \u00acit; d\u00e9 "
          "&hellip &nosuch; &ThisIsNotAnEntity; AT&T \u2233");
}

TEST_CASE("html: numeric references as HTML5 decodes them") {
    // &#0;, surrogates and values past U+10FFFF become U+FFFD; 0x80-0x9F are read as
    // windows-1252 (0x80 is the euro sign, 0x9F is Y with diaeresis); ';' may be left out.
    Document doc = parse_html(
        "<p>&#x1F600; &#128512; [&#0;] &#x80; &#X9f; [&#xD800;] [&#x110000;] &#65 &#x42;C "
        "&#99999999999; &# &#x; &#xg</p>");
    CHECK(doc.text ==
          "\U0001F600 \U0001F600 [\uFFFD] \u20ac \u0178 [\uFFFD] [\uFFFD] A BC \uFFFD &# &#x; "
          "&#xg");
}

TEST_CASE("html: a reference cut off by the end of the input") {
    std::string out;
    CHECK(detail::decode_character_reference("&", 0, out) == 0);
    CHECK(detail::decode_character_reference("x&am", 1, out) == 0);
    CHECK(detail::decode_character_reference("&amp", 0, out) == 4);
    CHECK(detail::decode_character_reference("&#x4", 0, out) == 4);
    CHECK(out == "&\x04");
    // A run of letters longer than any name is not read past the longest name.
    const std::string long_run(100, 'a');
    CHECK(detail::decode_character_reference("&" + long_run, 0, out) == 0);
}

TEST_CASE("html: attributes never leak into the text") {
    // "don't" is an unquoted value holding an apostrophe: it opens no quoted string. References
    // in attributes stay in the attribute; a '>' inside a quoted value does not end the tag.
    Document doc = parse_html(
        "<p title=\"&eacute;&lt;b&gt;fake&lt;/b&gt;\" data-q='a \"quoted\" > value'>Body "
        "<a href=\"?a=1&copy=2&lt;\">link</a> <img alt=don't src=x.png> after the image "
        "<img alt = \"spaced > value\">end</p>");
    CHECK(doc.text == "Body link after the image end");
}

TEST_CASE("html: table cells are tab-separated and rows stand on their own lines") {
    Document doc = parse_html(
        "<p>before</p><table><caption>Prices</caption>"
        "<thead><tr><th>Item</th><th>Cost</th></tr></thead>"
        "<tr> <td> Tea </td> <td>2</td> </tr>"
        "<tr><td>Cake<td><td>5"  // unclosed cells and rows; an empty middle cell
        "</table>after");
    CHECK(doc.text == "before\nPrices\nItem\tCost\nTea\t2\nCake\t\t5\nafter");
}
