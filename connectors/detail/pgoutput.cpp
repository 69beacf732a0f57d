#include "connectors/detail/pgoutput.h"

#include "connectors/detail/pg_util.h"

namespace sluice::connectors::detail {

namespace {

class Reader {
public:
    explicit Reader(std::string_view data) : data_(data) {}

    bool has(std::size_t n) const { return pos_ + n <= data_.size(); }
    bool ok() const { return ok_; }

    char byte() {
        if (!need(1)) {
            return 0;
        }
        return data_[pos_++];
    }
    std::uint16_t u16() { return need(2) ? read_u16(data_, pos_) : 0; }
    std::uint32_t u32() { return need(4) ? read_u32(data_, pos_) : 0; }
    std::uint64_t u64() { return need(8) ? read_u64(data_, pos_) : 0; }
    std::string cstring() {
        const std::size_t end = data_.find('\0', pos_);
        if (end == std::string_view::npos) {
            ok_ = false;
            return {};
        }
        std::string out(data_.substr(pos_, end - pos_));
        pos_ = end + 1;
        return out;
    }
    std::string bytes(std::size_t n) {
        if (!need(n)) {
            return {};
        }
        std::string out(data_.substr(pos_, n));
        pos_ += n;
        return out;
    }

private:
    bool need(std::size_t n) {
        if (!has(n)) {
            ok_ = false;
            return false;
        }
        return true;
    }
    std::string_view data_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

PgTuple read_tuple(Reader& in) {
    const std::uint16_t n = in.u16();
    PgTuple tuple;
    tuple.reserve(n);
    for (std::uint16_t i = 0; i < n && in.ok(); ++i) {
        PgValue value;
        const char kind = in.byte();
        if (kind == 'n') {
            value.kind = PgValueKind::kNull;
        } else if (kind == 'u') {
            value.kind = PgValueKind::kUnchanged;
        } else if (kind == 't' || kind == 'b') {
            value.kind = PgValueKind::kText;
            value.text = in.bytes(in.u32());
        } else {
            in.byte();  // forces !ok()
            value.kind = PgValueKind::kNull;
            return {};
        }
        tuple.push_back(std::move(value));
    }
    return tuple;
}

}  // namespace

Result<PgMessage> parse_pgoutput(std::string_view data) {
    Reader in(data);
    PgMessage message;
    const char type = in.byte();
    switch (type) {
        case 'B':
            message.kind = PgMessageKind::kBegin;
            message.final_lsn = in.u64();
            in.u64();  // commit timestamp
            in.u32();  // xid
            break;
        case 'C':
            message.kind = PgMessageKind::kCommit;
            in.byte();  // flags
            message.commit_lsn = in.u64();
            message.end_lsn = in.u64();
            in.u64();  // commit timestamp
            break;
        case 'R': {
            message.kind = PgMessageKind::kRelation;
            message.relation.id = in.u32();
            message.relation.schema = in.cstring();
            message.relation.table = in.cstring();
            message.relation.replica_identity = in.byte();
            const std::uint16_t n = in.u16();
            for (std::uint16_t i = 0; i < n && in.ok(); ++i) {
                PgColumn column;
                column.key = (in.byte() & 1) != 0;
                column.name = in.cstring();
                column.type_oid = in.u32();
                in.u32();  // type modifier
                message.relation.columns.push_back(std::move(column));
            }
            break;
        }
        case 'I':
            message.kind = PgMessageKind::kInsert;
            message.relation_id = in.u32();
            if (in.byte() != 'N') {
                return data_loss("pgoutput insert: expected a new tuple");
            }
            message.new_tuple = read_tuple(in);
            break;
        case 'U': {
            message.kind = PgMessageKind::kUpdate;
            message.relation_id = in.u32();
            char kind = in.byte();
            if (kind == 'K' || kind == 'O') {
                message.old_kind = kind;
                message.old_tuple = read_tuple(in);
                kind = in.byte();
            }
            if (kind != 'N') {
                return data_loss("pgoutput update: expected a new tuple");
            }
            message.new_tuple = read_tuple(in);
            break;
        }
        case 'D': {
            message.kind = PgMessageKind::kDelete;
            message.relation_id = in.u32();
            message.old_kind = in.byte();
            if (message.old_kind != 'K' && message.old_kind != 'O') {
                return data_loss("pgoutput delete: expected a key or old tuple");
            }
            message.old_tuple = read_tuple(in);
            break;
        }
        case 'T': {
            message.kind = PgMessageKind::kTruncate;
            const std::uint32_t n = in.u32();
            in.byte();  // options
            for (std::uint32_t i = 0; i < n && in.ok(); ++i) {
                message.truncated.push_back(in.u32());
            }
            break;
        }
        case 'O':  // origin
        case 'Y':  // type
        case 'M':  // logical decoding message
            message.kind = PgMessageKind::kIgnored;
            return message;
        default:
            return data_loss(std::string("pgoutput: unknown message type '") + type + "'");
    }
    if (!in.ok()) {
        return data_loss(std::string("pgoutput: truncated '") + type + "' message");
    }
    return message;
}

}  // namespace sluice::connectors::detail
