// The streaming half of the PostgreSQL source: START_REPLICATION, pgoutput decoding, standby
// status updates.
#include <unistd.h>

#include <algorithm>
#include <optional>

#include "common/log.h"
#include "connectors/detail/pg_snapshot.h"
#include "connectors/detail/postgres_state.h"

namespace sluice::connectors::detail {

using nlohmann::json;

Status PostgresState::start_stream(std::uint64_t start) {
    stop_stream();
    SLUICE_ASSIGN_OR_RETURN(repl, pg_connect(config.conninfo, connect_params(config, true)));
    const std::string command = "START_REPLICATION SLOT " + pg_identifier(repl.get(), config.slot) +
                            " LOGICAL " + lsn_to_string(start) +
                            " (proto_version '1', publication_names " +
                            pg_literal(repl.get(), pg_identifier(repl.get(), config.publication)) +
                            ")";
    auto started = pg_exec(repl.get(), command, PGRES_COPY_BOTH, "starting replication");
    if (!started) {
        repl.reset();
        return started.status();
    }
    streaming = true;
    floor = start;
    progress = start;
    received = std::max(received, start);
    buffer.clear();
    current.clear();
    in_txn = false;
    relations.clear();
    last_status = std::chrono::steady_clock::now();
    log::info("connectors.postgres", "replication started",
              {{"slot", config.slot}, {"from", lsn_to_string(start)}});
    return Status();
}

void PostgresState::stop_stream() {
    streaming = false;
    repl.reset();
    current.clear();
    in_txn = false;
}

Status PostgresState::send_status(bool reply_requested) {
    if (!streaming) {
        return Status();
    }
    // Standby status update: written, flushed, applied, clock, reply flag. Only the flush
    // position moves the slot, and it is what the consumer has acknowledged.
    std::string message = "r";
    write_u64(message, std::max(received, acknowledged));
    write_u64(message, acknowledged);
    write_u64(message, acknowledged);
    write_u64(message, static_cast<std::uint64_t>(pg_now_micros()));
    message += static_cast<char>(reply_requested ? 1 : 0);
    if (PQputCopyData(repl.get(), message.data(), static_cast<int>(message.size())) != 1 ||
        PQflush(repl.get()) != 0) {
        stop_stream();
        return unavailable("postgresql replication connection lost while sending status");
    }
    last_status = std::chrono::steady_clock::now();
    return Status();
}

namespace {

Row tuple_row(const PgTable& table, const PgRelation& relation, const PgTuple& tuple,
              const PgTuple* old_tuple, std::vector<std::string>* unchanged) {
    Row row;
    for (const PgColumn& column : table.columns) {
        row.columns.push_back(column.name);
        json value = nullptr;
        for (std::size_t i = 0; i < relation.columns.size() && i < tuple.size(); ++i) {
            if (relation.columns[i].name != column.name) {
                continue;
            }
            const PgValue* source = &tuple[i];
            if (source->kind == PgValueKind::kUnchanged && old_tuple != nullptr &&
                i < old_tuple->size() && (*old_tuple)[i].kind == PgValueKind::kText) {
                source = &(*old_tuple)[i];
            }
            if (source->kind == PgValueKind::kText) {
                value = pg_value_json(column.type_oid, source->text);
            } else if (source->kind == PgValueKind::kUnchanged && unchanged != nullptr) {
                unchanged->push_back(column.name);
            }
        }
        row.values.push_back(std::move(value));
    }
    return row;
}

std::string key_of(const PgTable& table, const Row& row) {
    const json* value = row.find(table.mapping.key);
    return value == nullptr ? std::string() : json_scalar_text(*value);
}

ChangeEvent delete_of(const PgTable& table, const std::string& key, const std::string& offset) {
    ChangeEvent event;
    event.key = table.display + "/" + key;
    event.op = Op::kDelete;
    event.offset = offset;
    return event;
}

// The first of `columns` that `relation` no longer has (dropped or renamed since the source
// opened), if any.
std::optional<std::string> missing_column(const std::vector<std::string>& columns,
                                          const PgRelation& relation) {
    for (const std::string& column : columns) {
        const bool present =
            std::any_of(relation.columns.begin(), relation.columns.end(),
                        [&](const PgColumn& have) { return have.name == column; });
        if (!present) {
            return column;
        }
    }
    return std::nullopt;
}

}  // namespace

namespace {

// Appends the events of one row change to the transaction being received.
Status decode_change(PostgresState& state, const PgMessage& message) {
    auto relation = state.relations.find(message.relation_id);
    if (relation == state.relations.end()) {
        return data_loss("pgoutput: change for relation " + std::to_string(message.relation_id) +
                         " before its Relation message");
    }
    const PgTable* table = state.table_by_name(relation->second.schema, relation->second.table);
    if (table == nullptr) {
        return Status();  // published, but not configured for this source
    }
    const std::string offset = "lsn:" + lsn_to_string(state.received) + "#" +
                               std::to_string(state.current.size());
    auto push = [&](ChangeEvent event) {
        BufferedEvent buffered;
        buffered.event = std::move(event);
        state.current.push_back(std::move(buffered));
    };
    const PgTuple* old_tuple = message.old_tuple ? &*message.old_tuple : nullptr;
    // The table changed under the mapping: the row cannot be read as mapped. Reported with its
    // key (when the key column is still there) instead of a document missing part of the row;
    // the stream goes on.
    const std::vector<std::string> key_only = {table->mapping.key};
    if (auto missing = missing_column(
            message.kind == PgMessageKind::kDelete ? key_only : table->mapped, relation->second)) {
        BufferedEvent buffered;
        buffered.is_error = true;
        const PgTuple& tuple =
            message.kind == PgMessageKind::kDelete ? *message.old_tuple : message.new_tuple;
        const std::string key = key_of(*table, tuple_row(*table, relation->second, tuple,
                                                         nullptr, nullptr));
        buffered.error.key = key.empty() ? table->display : table->display + "/" + key;
        buffered.error.message = column_gone_message(*table, *missing);
        buffered.error.offset = offset;
        state.current.push_back(std::move(buffered));
        return Status();
    }
    // A row without a key value cannot be a document: an error record, not a key "<table>/".
    auto unkeyed = [&](std::string_view what) {
        BufferedEvent buffered;
        buffered.is_error = true;
        buffered.error.key = table->display;
        buffered.error.message = std::string(what) + " of table '" + table->display +
                                 "' has no value for its key column '" + table->mapping.key +
                                 "' (null, or not in the replica identity) and cannot be keyed";
        buffered.error.offset = offset;
        state.current.push_back(std::move(buffered));
    };
    if (message.kind == PgMessageKind::kDelete) {
        Row old = tuple_row(*table, relation->second, *message.old_tuple, nullptr, nullptr);
        const std::string old_key = key_of(*table, old);
        if (old_key.empty()) {
            unkeyed("a deleted row");
            return Status();
        }
        push(delete_of(*table, old_key, offset));
        return Status();
    }
    std::vector<std::string> unchanged;
    Row row = tuple_row(*table, relation->second, message.new_tuple,
                        message.old_kind == 'O' ? old_tuple : nullptr, &unchanged);
    const std::string key = key_of(*table, row);
    if (key.empty()) {
        unkeyed("a row");
        return Status();
    }
    if (old_tuple != nullptr) {
        Row old = tuple_row(*table, relation->second, *old_tuple, nullptr, nullptr);
        const std::string old_key = key_of(*table, old);
        if (!old_key.empty() && old_key != key) {
            push(delete_of(*table, old_key, offset));
        }
    }
    if (!unchanged.empty()) {
        // A TOASTed value that the update did not touch is not in the stream: read the row.
        SLUICE_ASSIGN_OR_RETURN(std::optional<Row> now, state.reread(*table, key));
        if (!now) {
            push(delete_of(*table, key, offset));  // deleted since; its delete follows
            return Status();
        }
        for (const std::string& column : unchanged) {
            const json* value = now->find(column);  // null: dropped since the change
            for (std::size_t i = 0; i < row.columns.size() && value != nullptr; ++i) {
                if (row.columns[i] == column) {
                    row.values[i] = *value;
                }
            }
        }
    }
    push(pg_upsert(*table, row, key, offset));
    return Status();
}

Status decode(PostgresState& state, std::string_view payload) {
    SLUICE_ASSIGN_OR_RETURN(PgMessage message, parse_pgoutput(payload));
    switch (message.kind) {
        case PgMessageKind::kBegin:
            state.in_txn = true;
            state.current.clear();
            return Status();
        case PgMessageKind::kRelation:
            state.relations[message.relation.id] = message.relation;
            return Status();
        case PgMessageKind::kInsert:
        case PgMessageKind::kUpdate:
        case PgMessageKind::kDelete:
            return decode_change(state, message);
        case PgMessageKind::kTruncate:
            for (std::uint32_t id : message.truncated) {
                auto relation = state.relations.find(id);
                if (relation == state.relations.end()) {
                    continue;
                }
                BufferedEvent buffered;
                buffered.is_error = true;
                buffered.error.key = relation->second.schema + "." + relation->second.table;
                buffered.error.message =
                    "truncate of " + buffered.error.key +
                    " cannot be delivered as per-key deletes; start the source again from \"\"";
                buffered.error.offset = "lsn:" + lsn_to_string(state.received);
                state.current.push_back(std::move(buffered));
            }
            return Status();
        case PgMessageKind::kCommit: {
            state.in_txn = false;
            // Transactions ending at or before the floor were delivered before a reconnect.
            if (message.end_lsn > state.floor) {
                for (std::size_t i = 0; i < state.current.size(); ++i) {
                    BufferedEvent& buffered = state.current[i];
                    buffered.txn_end = message.end_lsn;
                    buffered.index = static_cast<std::uint32_t>(i);
                    buffered.last = i + 1 == state.current.size();
                    state.buffer.push_back(std::move(buffered));
                }
            }
            state.current.clear();
            state.progress = std::max(state.progress, message.end_lsn);
            return Status();
        }
        case PgMessageKind::kIgnored: return Status();
    }
    return Status();
}

}  // namespace

Status PostgresState::pump() {
    if (!streaming) {
        return unavailable("postgresql replication is not running");
    }
    if (PQconsumeInput(repl.get()) != 1) {
        stop_stream();
        return unavailable("postgresql replication connection lost");
    }
    while (true) {
        char* raw = nullptr;
        const int n = PQgetCopyData(repl.get(), &raw, /*async=*/1);
        if (n == 0) {
            return Status();
        }
        if (n < 0) {
            stop_stream();
            return unavailable("postgresql replication stream ended");
        }
        std::string data(raw, static_cast<std::size_t>(n));
        PQfreemem(raw);
        std::size_t pos = 1;
        if (data[0] == 'w' && data.size() >= 25) {
            const std::uint64_t start = read_u64(data, pos);
            read_u64(data, pos);  // server's WAL end
            read_u64(data, pos);  // send time
            received = std::max(received, start);
            Status status = decode(*this, std::string_view(data).substr(25));
            if (!status.ok()) {
                stop_stream();
                return status;
            }
        } else if (data[0] == 'k' && data.size() >= 18) {
            const std::uint64_t wal_end = read_u64(data, pos);
            read_u64(data, pos);  // send time
            const bool reply = data[pos] != 0;
            received = std::max(received, wal_end);
            // Everything that ended before the keepalive's position has been sent to us.
            if (!in_txn) {
                progress = std::max(progress, wal_end);
            }
            if (reply) {
                SLUICE_RETURN_IF_ERROR(send_status(false));
            }
        }
    }
}

}  // namespace sluice::connectors::detail
