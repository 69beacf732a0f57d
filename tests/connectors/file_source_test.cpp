#include "connectors/file_source.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "connectors_test_support.h"
#include "pdf_fixture.h"

using namespace sluice::connectors;
using sluice::StatusCode;
using sluice::testing::drain;
using sluice::testing::TempDir;
using sluice::testing::write_file;
namespace fs = std::filesystem;

namespace {

struct Tree {
    TempDir dir{"files"};
    fs::path root = dir.path / "docs";
    fs::path state = dir.path / "state";

    Tree() { fs::create_directories(root); }

    FileSourceConfig config() const {
        FileSourceConfig config;
        config.root = root.string();
        config.state_dir = state.string();
        config.rows.key = "id";
        config.acl.groups = {"staff"};
        return config;
    }
    void write(const std::string& relative, const std::string& content) const {
        write_file(root / relative, content);
    }
    // Moves the mtime so that a rewrite within the same clock tick is still seen as a change
    // by size-and-mtime; the content hash decides whether anything is delivered.
    void touch_later(const std::string& relative, int seconds) const {
        struct stat info {};
        REQUIRE(::stat((root / relative).c_str(), &info) == 0);
        struct timespec times[2] = {info.st_atim, info.st_mtim};
        times[1].tv_sec += seconds;
        REQUIRE(::utimensat(AT_FDCWD, (root / relative).c_str(), times, 0) == 0);
    }
};

std::vector<std::string> describe(const std::vector<ChangeEvent>& events) {
    std::vector<std::string> out;
    for (const auto& event : events) {
        out.push_back(std::string(op_name(event.op)) + " " + event.key);
    }
    return out;
}

}  // namespace

TEST_CASE("file source: create, modify, rename and delete; unchanged files are skipped") {
    Tree tree;
    tree.write("guide.md", "# Guide\n\nHello.\n");
    tree.write("sub/page.html", "<title>Page</title><h1>Top</h1><p>Body</p>");
    tree.write("sub/notes.txt", "plain notes");
    tree.write("manual.pdf", sluice::testing::make_pdf({"Page one", "Page two"}, "Manual"));
    tree.write("rows.csv", "id,name\n1,alpha\n2,beta\n3,gamma\n");
    tree.write(".hidden/secret.txt", "not read");
    tree.write("image.png", "not a known format");

    auto source = FileSource::open(tree.config());
    REQUIRE_MESSAGE(source.ok(), source.status().to_string());
    auto first = drain(**source, "");
    CHECK(describe(first.events) ==
          std::vector<std::string>{"upsert guide.md", "upsert manual.pdf", "upsert rows.csv#1",
                                   "upsert rows.csv#2", "upsert rows.csv#3",
                                   "upsert sub/notes.txt", "upsert sub/page.html"});
    CHECK(first.errors.empty());
    const ChangeEvent& guide = first.events[0];
    CHECK(guide.document.metadata["title"] == "Guide");
    CHECK(guide.document.metadata["format"] == "markdown");
    CHECK(guide.document.metadata["path"] == "guide.md");
    CHECK(guide.document.acl.groups == std::vector<std::string>{"staff"});
    CHECK(first.events[1].document.metadata["pages"] == 2);
    CHECK(first.events[2].document.text == "alpha");
    CHECK(first.events[6].document.text == "Top\nBody");

    // Nothing changed: nothing delivered, same checkpoint. A touched file with the same content
    // is read again but delivers nothing either.
    auto idle = drain(**source, first.checkpoint);
    CHECK(idle.events.empty());
    CHECK(idle.checkpoint == first.checkpoint);
    tree.touch_later("guide.md", 5);
    auto touched = drain(**source, first.checkpoint);
    CHECK(touched.events.empty());

    tree.write("guide.md", "# Guide\n\nHello again.\n");
    tree.touch_later("guide.md", 10);
    tree.write("rows.csv", "id,name\n1,alpha\n3,GAMMA\n4,delta\n");
    fs::rename(tree.root / "sub/notes.txt", tree.root / "sub/renamed.txt");
    fs::remove(tree.root / "sub/page.html");
    auto changes = drain(**source, touched.checkpoint);
    CHECK(describe(changes.events) ==
          std::vector<std::string>{"upsert guide.md", "delete rows.csv#2", "upsert rows.csv#3",
                                   "upsert rows.csv#4", "delete sub/notes.txt",
                                   "delete sub/page.html", "upsert sub/renamed.txt"});
    CHECK(changes.events[0].document.text == "# Guide\n\nHello again.\n");
    CHECK(changes.events[6].document.metadata["renamed_from"] == "sub/notes.txt");

    // Re-polling from the older checkpoint is idempotent: same events, same next checkpoint.
    auto again = drain(**source, touched.checkpoint);
    CHECK(describe(again.events) == describe(changes.events));
    CHECK(again.checkpoint == changes.checkpoint);

    // A restarted source continues from the checkpoint.
    source->reset();
    auto reopened = FileSource::open(tree.config());
    REQUIRE(reopened.ok());
    CHECK(drain(**reopened, changes.checkpoint).events.empty());
}

TEST_CASE("file source: a corrupt pdf and bad rows are error records; skip goes on") {
    Tree tree;
    tree.write("a.txt", "first");
    tree.write("broken.pdf", "%PDF-1.7\nthis is not really a pdf\n");
    tree.write("rows.jsonl", "{\"id\": 1, \"t\": \"x\"}\nnot json\n{\"id\": 2, \"t\": \"y\"}\n");
    tree.write("z.txt", "last");
    auto source = FileSource::open(tree.config());
    REQUIRE(source.ok());
    auto first = drain(**source, "");
    CHECK(describe(first.events) ==
          std::vector<std::string>{"upsert a.txt", "upsert rows.jsonl#1", "upsert rows.jsonl#2",
                                   "upsert z.txt"});
    REQUIRE(first.errors.size() == 2);
    CHECK(first.errors[0].key == "broken.pdf");
    CHECK(first.errors[0].message.find("pdf") != std::string::npos);
    CHECK(first.errors[1].key == "rows.jsonl");
    CHECK(first.errors[1].message == "line 2: json does not parse");
    // The same broken version is not reported again.
    auto second = drain(**source, first.checkpoint);
    CHECK(second.errors.empty());
    auto status = (*source)->status();
    REQUIRE(status.ok());

    // Fixing the file delivers it.
    tree.write("broken.pdf", sluice::testing::make_pdf({"Fixed"}, "Fixed"));
    tree.touch_later("broken.pdf", 3);
    auto fixed = drain(**source, second.checkpoint);
    CHECK(describe(fixed.events) == std::vector<std::string>{"upsert broken.pdf"});
    CHECK(fixed.errors.empty());
}

TEST_CASE("file source: the pause policy stops before a broken file until it is fixed") {
    Tree tree;
    tree.write("a.txt", "first");
    tree.write("b.pdf", "%PDF-1.4 garbage");
    tree.write("c.txt", "after");
    FileSourceConfig config = tree.config();
    config.on_error = ErrorPolicy::kPause;
    auto source = FileSource::open(config);
    REQUIRE(source.ok());
    auto batch = (*source)->poll("", {});
    REQUIRE(batch.ok());
    CHECK(batch->paused);
    CHECK(describe(batch->events) == std::vector<std::string>{"upsert a.txt"});
    REQUIRE(batch->errors.size() == 1);
    CHECK(batch->errors[0].key == "b.pdf");
    auto stuck = (*source)->poll(batch->checkpoint, {});
    REQUIRE(stuck.ok());
    CHECK(stuck->paused);
    CHECK(stuck->events.empty());
    CHECK(stuck->checkpoint == batch->checkpoint);
    fs::remove(tree.root / "b.pdf");
    auto resumed = drain(**source, batch->checkpoint);
    CHECK(describe(resumed.events) == std::vector<std::string>{"upsert c.txt"});
}

TEST_CASE("file source: a large csv cut over many batches is delivered exactly once") {
    Tree tree;
    std::string csv = "id,text\n";
    for (int i = 0; i < 2500; ++i) {
        csv += std::to_string(100000 + i) + ",row " + std::to_string(i) + "\n";
    }
    tree.write("big.csv", csv);
    tree.write("after.txt", "x");
    tree.write("before.txt", "y");
    auto source = FileSource::open(tree.config());
    REQUIRE(source.ok());

    // Poll in batches of 300; midway, edit the file and re-poll one batch from an earlier
    // checkpoint, as a consumer that crashed before committing would.
    std::vector<ChangeEvent> applied;
    std::string checkpoint;
    std::string earlier;
    for (int i = 0; i < 100; ++i) {
        auto batch = (*source)->poll(checkpoint, PollOptions{300});
        REQUIRE(batch.ok());
        if (i == 3) {
            earlier = checkpoint;
        }
        for (auto& event : batch->events) {
            applied.push_back(event);
        }
        checkpoint = batch->checkpoint;
        if (batch->caught_up) {
            break;
        }
    }
    std::map<std::string, std::string> state;
    sluice::testing::apply(state, applied);
    CHECK(applied.size() == 2502);
    CHECK(state.size() == 2502);
    CHECK(state["big.csv#100007"] == "row 7");

    auto replay = (*source)->poll(earlier, PollOptions{300});
    REQUIRE(replay.ok());
    REQUIRE(replay->events.size() == 300);
    CHECK(replay->events[0].key == applied[3 * 300].key);

    // Change rows while a consumer is in the middle of the file: it still converges.
    std::string edited = "id,text\n";
    for (int i = 0; i < 2500; i += 2) {
        edited += std::to_string(100000 + i) + ",edited " + std::to_string(i) + "\n";
    }
    std::map<std::string, std::string> mid;
    std::string cursor;
    for (int i = 0; i < 100; ++i) {
        if (i == 2) {
            tree.write("big.csv", edited);
            tree.touch_later("big.csv", 7);
        }
        auto batch = (*source)->poll(cursor, PollOptions{400});
        REQUIRE(batch.ok());
        sluice::testing::apply(mid, batch->events);
        cursor = batch->checkpoint;
        if (batch->caught_up) {
            break;
        }
    }
    CHECK(mid.size() == 1250 + 2);
    CHECK(mid["big.csv#100008"] == "edited 8");
    CHECK(mid.count("big.csv#100009") == 0);
    CHECK(drain(**source, cursor).events.empty());
}

TEST_CASE("file source: acknowledge prunes older manifests") {
    Tree tree;
    tree.write("a.txt", "1");
    auto source = FileSource::open(tree.config());
    REQUIRE(source.ok());
    auto first = drain(**source, "");
    tree.write("a.txt", "22");
    auto second = drain(**source, first.checkpoint);
    REQUIRE(second.events.size() == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    tree.write("b.txt", "3");
    auto third = drain(**source, second.checkpoint);
    REQUIRE((*source)->acknowledge(third.checkpoint).ok());
    auto stale = (*source)->poll(first.checkpoint, {});
    CHECK(stale.status().code() == StatusCode::kFailedPrecondition);
    CHECK(drain(**source, third.checkpoint).events.empty());
    CHECK((*source)->poll("{\"v\":1,\"m\":\"../x\"}", {}).status().code() ==
          StatusCode::kInvalidArgument);
    CHECK((*source)->poll("garbage", {}).status().code() == StatusCode::kInvalidArgument);
    // A version that is not a number is malformed too (it used to throw out of poll).
    for (const char* bad : {R"({"v":"1","m":"x"})", R"({"v":null,"m":"x"})", R"({"v":[1]})"}) {
        CHECK_MESSAGE((*source)->poll(bad, {}).status().code() == StatusCode::kInvalidArgument,
                      bad);
    }
}

TEST_CASE("file source: inotify wakes wait; configuration errors") {
    Tree tree;
    auto source = FileSource::open(tree.config());
    REQUIRE(source.ok());
    drain(**source, "");  // installs the watches
    auto idle = (*source)->wait(std::chrono::milliseconds(10));
    REQUIRE(idle.ok());
    CHECK_FALSE(*idle);
    std::jthread writer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        tree.write("new.md", "# New");
    });
    auto woke = (*source)->wait(std::chrono::seconds(10));
    REQUIRE(woke.ok());
    CHECK(*woke);

    FileSourceConfig missing = tree.config();
    missing.root = (tree.dir.path / "absent").string();
    CHECK(FileSource::open(missing).status().code() == StatusCode::kNotFound);
    auto parsed = file_config_from_json(nlohmann::json::parse(R"({"root": "/x", "on_error": "stop"})"));
    CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
    CHECK(parsed.status().message().starts_with("on_error"));
}

TEST_CASE("file source: a root that disappears fails the poll instead of deleting every file") {
    Tree tree;
    tree.write("a.txt", "alpha");
    tree.write("sub/b.md", "# B");
    auto source = FileSource::open(tree.config());
    REQUIRE(source.ok());
    auto first = drain(**source, "");
    REQUIRE(first.events.size() == 2);

    // Renamed away (an unmount looks the same from here): an error naming the root, no events.
    const fs::path away = tree.dir.path / "away";
    fs::rename(tree.root, away);
    auto gone = (*source)->poll(first.checkpoint, {});
    REQUIRE_FALSE(gone.ok());
    CHECK(gone.status().code() == StatusCode::kUnavailable);
    CHECK(gone.status().message().find(tree.root.string()) != std::string::npos);

    // A file in its place is no folder either.
    write_file(tree.root, "not a folder");
    CHECK((*source)->poll(first.checkpoint, {}).status().code() == StatusCode::kUnavailable);
    fs::remove(tree.root);

    // Back again: nothing was lost, and changes made meanwhile are seen.
    fs::rename(away, tree.root);
    tree.write("c.txt", "gamma");
    auto back = drain(**source, first.checkpoint);
    CHECK(describe(back.events) == std::vector<std::string>{"upsert c.txt"});
}

TEST_CASE("file source: text in another encoding is read with U+FFFD for invalid bytes") {
    Tree tree;
    tree.write("latin1.txt", "caf\xe9 cr\xe8me");
    tree.write("notes.md", "# Titre \xe9t\xe9\n\nbody \xff\n");
    tree.write("rows.csv", "id,name\n1,Andr\xe9\n");
    tree.write("page.html", "<title>\xe9</title><p>x\xfe</p>");
    tree.write("ok.txt", "caf\xc3\xa9");  // valid UTF-8 is kept byte for byte
    auto source = FileSource::open(tree.config());
    REQUIRE(source.ok());
    auto first = drain(**source, "");
    CHECK(first.errors.empty());
    REQUIRE(first.events.size() == 5);
    std::map<std::string, std::string> texts;
    std::map<std::string, nlohmann::json> metadata;
    for (const ChangeEvent& event : first.events) {
        texts[event.key] = event.document.text;
        metadata[event.key] = event.document.metadata;
        // Every event is JSON as it stands (a strict dump throws on invalid UTF-8).
        CHECK_NOTHROW(static_cast<void>(to_json(event).dump()));
    }
    CHECK(texts["latin1.txt"] == "caf\xef\xbf\xbd cr\xef\xbf\xbdme");
    CHECK(texts["rows.csv#1"] == "Andr\xef\xbf\xbd");
    CHECK(texts["ok.txt"] == "caf\xc3\xa9");
    CHECK(metadata["notes.md"]["title"] == "Titre \xef\xbf\xbdt\xef\xbf\xbd");
    CHECK(drain(**source, first.checkpoint).events.empty());
}

TEST_CASE("file source: a file name that is not UTF-8 is one error record, never a document") {
    Tree tree;
    tree.write("good.txt", "good");
    tree.write("bad\xff%name.txt", "content");
    tree.write("sub\xfe/inner.md", "# Inner");
    auto source = FileSource::open(tree.config());
    REQUIRE(source.ok());
    auto first = drain(**source, "");
    CHECK(describe(first.events) == std::vector<std::string>{"upsert good.txt"});
    REQUIRE(first.errors.size() == 2);
    std::set<std::string> keys;
    for (const ErrorRecord& error : first.errors) {
        keys.insert(error.key);
        CHECK(error.message.find("not valid UTF-8") != std::string::npos);
        CHECK_NOTHROW(static_cast<void>(to_json(error).dump()));
    }
    CHECK(keys == std::set<std::string>{"bad\\xFF%25name.txt", "sub\\xFE/inner.md"});
    // Stable: the next polls deliver and report nothing, and keep the checkpoint.
    auto again = drain(**source, first.checkpoint);
    CHECK(again.events.empty());
    CHECK(again.errors.empty());
    CHECK(again.checkpoint == first.checkpoint);
    CHECK(drain(**source, again.checkpoint).checkpoint == first.checkpoint);
    // Renamed to a valid name, the file becomes a document; the error entry goes silently.
    fs::rename(tree.root / "bad\xff%name.txt", tree.root / "fixed.txt");
    auto fixed = drain(**source, again.checkpoint);
    CHECK(describe(fixed.events) == std::vector<std::string>{"upsert fixed.txt"});
    CHECK(fixed.errors.empty());
}
