"""Every SQL statement the SQLite store runs, by name, each with what it does.

The store's methods (``IntakeOps``, ``DeliveryOps``, ``OperatorOps``, ``LeadOps``) say what
they mean and run these; a store on another database implements the same methods with its own
statements.
Values are always bound as parameters (``?``, ``?N`` or ``:name``); what is put into the text
at run time is only more ``?`` placeholders (the listed id sets of ``claim_due`` and
``deliveries``), and at import only this module's own fragments (``VISITOR_ID_OF`` and the
like). Transaction control (BEGIN, SAVEPOINT, COMMIT) is ``StoreBase._transaction``'s.
"""

from __future__ import annotations

# A stored body's visitor id (as text) and email address (lower case), read as JSON: each NULL
# for a body that is not JSON or has no such value. Written into conversations.visitor_id and
# visitor_email at intake, and by migration 10 for the rows stored before it, always by these
# expressions, so a visitor matches across versions written before and after.
VISITOR_ID_OF = (
    "CAST(json_extract(CASE WHEN json_valid(CAST({raw} AS TEXT)) THEN CAST({raw} AS TEXT) END,"
    " '$.visitor.id') AS TEXT)"
)
VISITOR_EMAIL_OF = (
    "lower(json_extract(CASE WHEN json_valid(CAST({raw} AS TEXT)) THEN CAST({raw} AS TEXT) END,"
    " '$.visitor.email'))"
)

# A stored body's begin time in Unix seconds as SQLite reads it (beginAt / 1000.0; NULL for
# none; +-Infinity for an integer no double holds, 0.0 below the smallest one): the same as
# relay.store.records.begin_seconds makes of a number it can read, and read instead where it
# gives None.
BEGIN_OF = (
    "json_extract(CASE WHEN json_valid(CAST({raw} AS TEXT)) THEN CAST({raw} AS TEXT) END,"
    " '$.beginAt') / 1000.0"
)

# -- intake --------------------------------------------------------------------------------

# Insert a new version of a conversation; the next version number is computed inside the
# INSERT, and an exact duplicate (same key and content hash) inserts nothing (no row back).
# Its visitor id and email address are read from the body here (VISITOR_ID_OF and
# VISITOR_EMAIL_OF), and so is its begin time where the caller has none (BEGIN_OF), as
# migration 10 filled them in for the rows stored before.
# Parameters: ?1 conv_key, ?2 account_id, ?3 channel_id, ?4 content_hash, ?5 category,
# ?6 received_at, ?7 raw, ?8 begin_at (the body's beginAt in Unix seconds; NULL where the
# caller could not read it).
INSERT_CONVERSATION_VERSION = (
    "INSERT INTO conversations (conv_key, account_id, channel_id, version, content_hash,"  # noqa: S608 -- constants
    " category, received_at, raw, begin_at, visitor_id, visitor_email)"
    " SELECT ?1, ?2, ?3, COALESCE(MAX(version), 0) + 1, ?4, ?5, ?6, ?7,"
    f" COALESCE(?8, {BEGIN_OF.format(raw='?7')}),"
    f" {VISITOR_ID_OF.format(raw='?7')}, {VISITOR_EMAIL_OF.format(raw='?7')}"
    " FROM conversations WHERE conv_key = ?1"
    " ON CONFLICT (conv_key, content_hash) DO NOTHING RETURNING id, version"
)

# The stored conversation an exact duplicate repeats: id and version by key and content hash.
FIND_DUPLICATE = "SELECT id, version FROM conversations WHERE conv_key = ? AND content_hash = ?"

# Plan one delivery unless its dedupe key is already planned (then nothing).
PLAN_DELIVERY = (
    "INSERT OR IGNORE INTO deliveries (conversation_id, dedupe_key, rule, channel,"
    " action, category, created_at, next_attempt_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# Keep one refused body.
INSERT_QUARANTINE = (
    "INSERT INTO quarantine (received_at, reason, message, remote, size, body)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)

# The visitor of one stored conversation, as VISITOR_VERSIONS_* look it up:
# account_id, conv_key, received_at, visitor_id, visitor_email. Parameter: conversation id.
# The visitor's id and email address are read as their bytes (BLOB) and compared as text again
# (CAST(:visitor AS TEXT)): a body's JSON can hold text that is not UTF-8 (a lone surrogate
# escape such as "\ud800"), which Python cannot decode, and the bytes match exactly.
VISITOR_OF = (
    "SELECT account_id, conv_key, received_at, CAST(visitor_id AS BLOB),"
    " CAST(visitor_email AS BLOB) FROM conversations WHERE id = ?"
)

# The same visitor's conversations in the same account, stored before the given one and
# received no later, by visitor id (_BY_ID, :visitor) or email address (_BY_EMAIL, lower case):
# one row per stored version, NEWEST FIRST, of at most the newest :rows versions (a visitor
# with thousands of stored chats costs no more than that), the given chat's own versions left
# out before that limit: conv_key, category, begin time in Unix seconds (begin_at, the body's
# beginAt; else when it was received). The conversations_visitor_* indexes (migration 10)
# hold every column read, ordered by id within the visitor: the visitor's entries are read
# from the index alone, newest first, until :rows match (the given chat's own versions and
# any received later are passed over), never a table row.
# Parameters: :account, :visitor, :id, :conv_key, :received, :rows.
# _VISITOR_ENTRIES: the visitor's entries in its index before :id (both queries below).
_VISITOR_ENTRIES = (
    " FROM conversations INDEXED BY conversations_{column}"
    " WHERE {column} != '' AND account_id = :account AND {column} = CAST(:visitor AS TEXT)"
    " AND id < :id"
)
_VISITOR_VERSIONS = (
    "SELECT conv_key, category, COALESCE(begin_at, received_at)"
    + _VISITOR_ENTRIES
    + " AND conv_key != :conv_key AND received_at <= :received ORDER BY id DESC LIMIT :rows"
)
VISITOR_VERSIONS_BY_ID = _VISITOR_VERSIONS.format(column="visitor_id")
VISITOR_VERSIONS_BY_EMAIL = _VISITOR_VERSIONS.format(column="visitor_email")

# The same for several conversations of one visitor at once (``visitor_histories``): the
# visitor's versions stored before :id (the newest of those conversations), NEWEST FIRST,
# with no limit and none passed over: the store reads them only as far as each conversation
# needs, and passes over each one's own chat and later receipts in Python, as the query above
# does. From the same index alone: id, conv_key, received_at, category, begin time.
# Parameters: :account, :visitor, :id.
_VISITOR_VERSIONS_BEFORE = (
    "SELECT id, conv_key, received_at, category, COALESCE(begin_at, received_at)"
    + _VISITOR_ENTRIES
    + " ORDER BY id DESC"
)
VISITOR_VERSIONS_BEFORE_BY_ID = _VISITOR_VERSIONS_BEFORE.format(column="visitor_id")
VISITOR_VERSIONS_BEFORE_BY_EMAIL = _VISITOR_VERSIONS_BEFORE.format(column="visitor_email")

# Drop the oldest quarantined bodies beyond the newest N rows.
TRIM_QUARANTINE_ROWS = (
    "DELETE FROM quarantine WHERE id <= (SELECT id FROM quarantine"
    " ORDER BY id DESC LIMIT 1 OFFSET ?)"
)

# Drop the oldest quarantined bodies that bring the kept ones beyond N bytes; length() of a
# blob reads the row header, not the body's overflow pages.
TRIM_QUARANTINE_BYTES = (
    "DELETE FROM quarantine WHERE id <= (SELECT MAX(id) FROM (SELECT id,"
    " SUM(length(body)) OVER (ORDER BY id DESC) AS kept FROM quarantine)"
    " WHERE kept > ?)"
)

# -- the worker's queue --------------------------------------------------------------------

# After a crash or restart: deliveries left 'sending' go back to the queue, due now.
RECOVER_CLAIMED = (
    "UPDATE deliveries SET status = 'retrying', next_attempt_at = ?, updated_at = ?,"
    " last_error = 'interrupted while sending' ||"
    " COALESCE(' (before: ' || last_error || ')', '')"
    " WHERE status = 'sending'"
)

# Due deliveries in claim order with their actions, for a per-destination admission check
# (relay.store.admission): after a position in that order, leaving out the actions already
# turned away, one page at a time. Parameters: now, the last (next_attempt_at, id) read, each
# action turned away, page size.
DUE_ACTIONS_COLUMNS = "SELECT d.id, d.action, d.next_attempt_at"
DUE_ACTIONS_SOURCE = "deliveries d INDEXED BY deliveries_due_order"
DUE_ACTIONS_WHERE = (
    "d.status IN ('pending', 'retrying') AND d.next_attempt_at <= ?"
    " AND (d.next_attempt_at, d.id) > (?, ?)"
)


def due_actions(refused: int) -> str:
    leave_out = f" AND d.action NOT IN ({','.join('?' * refused)})" if refused else ""
    return (
        f"{DUE_ACTIONS_COLUMNS} FROM {DUE_ACTIONS_SOURCE}"
        f" WHERE {DUE_ACTIONS_WHERE}{leave_out} ORDER BY d.next_attempt_at, d.id LIMIT ?"
    )


# What a claimed delivery needs, with the conversation's raw body; completed by a FROM source
# and a WHERE condition (CLAIM_DUE_SOURCE/CLAIM_DUE_WHERE, or CLAIM_BY_ID_* for admitted ids).
CLAIM_COLUMNS = (
    "SELECT d.id, d.conversation_id, d.rule, d.channel, d.action, d.category,"
    " d.attempts, d.created_at, d.dedupe_key, d.done_recipients, c.raw"
)
CLAIM_DUE_SOURCE = "deliveries d INDEXED BY deliveries_due_order"
CLAIM_DUE_WHERE = "d.status IN ('pending', 'retrying') AND d.next_attempt_at <= ?"
CLAIM_BY_ID_SOURCE = "deliveries d"


def claim_query(source: str, where: str) -> str:
    """The claim SELECT over ``source`` (one of the sources above) filtered by ``where``."""
    return (
        f"{CLAIM_COLUMNS} FROM {source} JOIN conversations c ON c.id = d.conversation_id"
        f" WHERE {where} ORDER BY d.next_attempt_at, d.id LIMIT ?"
    )


def ids_in(column: str, count: int) -> str:
    """``column IN (?, ...)`` with ``count`` placeholders."""
    return f"{column} IN ({','.join('?' * count)})"


# Mark a claimed delivery 'sending' and count the attempt.
MARK_SENDING = (
    "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, updated_at = ? WHERE id = ?"
)

# When the earliest queued delivery is due (after a given time, or at all).
NEXT_DUE_AFTER = (
    "SELECT MIN(next_attempt_at) FROM deliveries"
    " WHERE status IN ('pending', 'retrying') AND next_attempt_at > ?"
)
NEXT_DUE = "SELECT MIN(next_attempt_at) FROM deliveries WHERE status IN ('pending', 'retrying')"

# Record a sent delivery (sent_to 'outbox': written to the local outbox instead) and, for an
# email really sent, its Message-ID as the external_ref (NULL leaves the column as it is).
# Parameters: now, sent_to, message id, delivery id.
MARK_SENT = (
    "UPDATE deliveries SET status = 'sent', updated_at = ?, last_error = NULL,"
    " sent_to = ?, external_ref = COALESCE(?, external_ref) WHERE id = ?"
)

# The visitor of a delivery's conversation, as SENT_EMAIL_IDS looks it up: conv_key,
# account_id, visitor_id, visitor_email (their bytes, as VISITOR_OF). Parameter: delivery id.
DELIVERY_VISITOR = (
    "SELECT c.conv_key, c.account_id, CAST(c.visitor_id AS BLOB), CAST(c.visitor_email AS BLOB)"
    " FROM deliveries d JOIN conversations c ON c.id = d.conversation_id WHERE d.id = ?"
)

# The Message-IDs of the emails really sent (not to the outbox) about a visitor, other than
# the given delivery's own (:id), newest first, at most :limit: of the same chat (:conv_key,
# any version) and of the visitor's newest :rows conversations in the same account, by
# visitor id (:vid) or else email address (:vemail), the other NULL, which matches nothing
# (relay.store.operator.visitor_match). Both the visitor's conversations
# (conversations_visitor_*) and their sent emails (deliveries_sent_email, migration 10) are
# read from indexes made for this.
SENT_EMAIL_IDS = (
    "WITH convs AS ("
    " SELECT id FROM conversations WHERE conv_key = :conv_key"
    " UNION"
    " SELECT * FROM (SELECT o.id FROM conversations o INDEXED BY conversations_visitor_id"
    " WHERE o.visitor_id != '' AND o.account_id = :account"
    " AND o.visitor_id = CAST(:vid AS TEXT)"
    " ORDER BY o.id DESC LIMIT :rows)"
    " UNION"
    " SELECT * FROM (SELECT o.id FROM conversations o INDEXED BY conversations_visitor_email"
    " WHERE o.visitor_email != '' AND o.account_id = :account"
    " AND o.visitor_email = CAST(:vemail AS TEXT)"
    " ORDER BY o.id DESC LIMIT :rows))"
    # CROSS JOIN keeps that order: the visitor's conversations first, then their sent emails.
    " SELECT s.external_ref FROM convs CROSS JOIN deliveries s INDEXED BY deliveries_sent_email"
    " ON s.conversation_id = convs.id"
    " WHERE s.channel = 'email' AND s.status = 'sent' AND s.sent_to IS NULL"
    " AND s.external_ref IS NOT NULL AND s.id != :id"
    " ORDER BY s.updated_at DESC, s.id DESC LIMIT :limit"
)

# Record a failed attempt to be tried again at a given time, with the recipients done so far.
MARK_RETRY = (
    "UPDATE deliveries SET status = 'retrying', next_attempt_at = ?, last_error = ?,"
    " updated_at = ?, done_recipients = ? WHERE id = ?"
)

# Keep one finished attempt of a delivery: outcome (sent, retry, dead) and its detail (the
# error, or where a sent one went). Parameters: delivery id, at, outcome, detail.
RECORD_ATTEMPT = (
    "INSERT INTO delivery_attempts (delivery_id, at, outcome, detail) VALUES (?, ?, ?, ?)"
)

# Give a delivery up, with the recipients done so far.
MARK_DEAD = (
    "UPDATE deliveries SET status = 'dead', last_error = ?, updated_at = ?,"
    " done_recipients = ? WHERE id = ?"
)

# Keep the id a CRM or help desk gave what a delivery created or updated, and/or why it
# created nothing (as the last error); a NULL parameter leaves that column as it is.
# Parameters: external_ref, note, delivery id.
RECORD_EXTERNAL_REF = (
    "UPDATE deliveries SET external_ref = COALESCE(?, external_ref),"
    " last_error = COALESCE(?, last_error) WHERE id = ?"
)

# The id recorded by this delivery or, failing that, by the latest delivery of the same
# conversation (conv_key, any version) and the same action. Parameter: delivery id.
KNOWN_EXTERNAL_REF = (
    "SELECT e.external_ref FROM deliveries d"
    " JOIN conversations c ON c.id = d.conversation_id"
    " JOIN conversations ec ON ec.conv_key = c.conv_key"
    " JOIN deliveries e ON e.conversation_id = ec.id AND e.action = d.action"
    " WHERE d.id = ? AND e.external_ref IS NOT NULL"
    " ORDER BY e.id = d.id DESC, e.id DESC LIMIT 1"
)

# Give a claimed delivery back untouched (shutdown before it was sent): the attempt that never
# finished is not counted.
RELEASE_CLAIMED = (
    "UPDATE deliveries SET status = CASE WHEN attempts > 1 THEN 'retrying'"
    " ELSE 'pending' END, attempts = attempts - 1, next_attempt_at = ?,"
    " updated_at = ? WHERE id = ? AND status = 'sending'"
)

# -- operator queries and commands ---------------------------------------------------------

# Deliveries by status, sent ones that went to the outbox apart.
COUNT_BY_STATUS = (
    "SELECT CASE WHEN status = 'sent' AND sent_to = 'outbox' THEN 'outbox'"
    " ELSE status END, COUNT(*) FROM deliveries GROUP BY 1"
)

# When the oldest delivery still to be sent was planned.
OLDEST_ACTIVE = (
    "SELECT MIN(created_at) FROM deliveries WHERE status IN ('pending', 'retrying', 'sending')"
)

# A delivery row as operators see it (with the action's named destination, if any);
# completed by a WHERE condition.
DELIVERY_ROWS = (
    "SELECT d.id, d.conversation_id, c.conv_key, d.rule, d.channel, d.status, d.attempts,"
    " d.created_at, d.next_attempt_at, d.updated_at, d.last_error, d.sent_to,"
    " json_extract(d.action, '$.destination')"
    " FROM deliveries d JOIN conversations c ON c.id = d.conversation_id"
)
DELIVERY_BY_ID = f"{DELIVERY_ROWS} WHERE d.id = ?"

# Requeue for an immediate attempt, as a fresh start (attempts and age count from now):
# every dead delivery, or one given delivery unless it was sent or is in flight.
_REQUEUE = (
    "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?,"
    " created_at = ?, updated_at = ?"
)
REQUEUE_DEAD = f"{_REQUEUE} WHERE status = 'dead'"
REQUEUE_ONE = f"{_REQUEUE} WHERE id = ? AND status IN ('pending', 'retrying', 'dead')"

# (raw body, category, conv_key) of one stored conversation.
CONVERSATION_RAW = "SELECT raw, category, conv_key FROM conversations WHERE id = ?"

# The id of the newest stored version of a conversation.
LATEST_VERSION_ID = "SELECT id FROM conversations WHERE conv_key = ? ORDER BY version DESC LIMIT 1"

# Quarantined bodies, newest first; one by id.
_QUARANTINE_ROWS = "SELECT id, received_at, reason, message, remote, size, body FROM quarantine"
QUARANTINED = f"{_QUARANTINE_ROWS} ORDER BY id DESC LIMIT ?"
QUARANTINE_ENTRY = f"{_QUARANTINE_ROWS} WHERE id = ?"

# Conversations received before a cutoff with nothing left to deliver.
CONVERSATIONS_DONE_BEFORE = (
    "SELECT id FROM conversations WHERE received_at < ? AND id NOT IN"
    " (SELECT conversation_id FROM deliveries WHERE status IN ('pending', 'retrying',"
    " 'sending')) ORDER BY id"
)

# The deliveries of one conversation.
DELIVERY_IDS_OF = "SELECT id FROM deliveries WHERE conversation_id = ?"

# Overwrite freed pages, so purged personal data does not linger in the file.
SECURE_DELETE = "PRAGMA secure_delete=ON"

# Delete one conversation (its deliveries go with it: ON DELETE CASCADE).
DELETE_CONVERSATION = "DELETE FROM conversations WHERE id = ?"

# Delete quarantined bodies received before a cutoff.
DELETE_QUARANTINE_BEFORE = "DELETE FROM quarantine WHERE received_at < ?"

# Copy the write-ahead log into the database file and empty it.
CHECKPOINT = "PRAGMA wal_checkpoint(TRUNCATE)"

# Rewrite the one health-probe row: can a row be written and committed now?
PROBE_WRITE = (
    "INSERT INTO health_probe (id, checked_at) VALUES (1, ?)"
    " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at"
)

# What PRAGMA quick_check finds wrong ("ok" if nothing): a pass over every page.
QUICK_CHECK = "PRAGMA quick_check"

# -- leads (relay.leads) -------------------------------------------------------------------

# The columns of a lead, in the order ``relay.store.leads`` reads them.
_LEAD_COLUMNS = (
    "l.id, l.conv_key, l.category, l.created_at, l.state, l.visitor_id, l.visitor_email,"
    " l.visitor_name, l.claimed_by, l.claimed_at, l.done_by, l.done_at, l.note, l.answered_at"
)

# Inside an intake: the visitor's open leads of other conversations, by visitor id or email
# (an answered conversation settles them). Parameters: conv_key, visitor_id, visitor_email.
OPEN_LEADS_OF_VISITOR = (
    f"SELECT {_LEAD_COLUMNS} FROM leads l WHERE l.state = 'open' AND l.conv_key != ?"  # noqa: S608 -- fixed column list
    " AND ((l.visitor_id IS NOT NULL AND l.visitor_id = ?)"
    " OR (l.visitor_email IS NOT NULL AND l.visitor_email = ?))"
)

# A conversation to follow up becomes a lead, once per conversation key.
INSERT_LEAD = (
    "INSERT INTO leads (conv_key, conversation_id, category, created_at, visitor_id,"
    " visitor_email, visitor_name) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (conv_key) DO NOTHING"
)

# Compare-and-set: write a lead's new state only if the row still has the old state and
# claimer (no row changed: someone else got there first).
UPDATE_LEAD = (
    "UPDATE leads SET state = ?, claimed_by = ?, claimed_at = ?, done_by = ?, done_at = ?,"
    " note = ?, answered_at = ? WHERE id = ? AND state = ? AND claimed_by IS ?"
)

# One lead by id.
LEAD_BY_ID = f"SELECT {_LEAD_COLUMNS} FROM leads l WHERE l.id = ?"  # noqa: S608 -- fixed column list

# The lead of the conversation (any version) stored under a conversation id.
LEAD_OF_CONVERSATION = (
    f"SELECT {_LEAD_COLUMNS} FROM leads l"  # noqa: S608 -- fixed column list
    " JOIN conversations c ON c.conv_key = l.conv_key WHERE c.id = ?"
)

# Leads oldest first, at most N; and those in one state.
LEADS = f"SELECT {_LEAD_COLUMNS} FROM leads l ORDER BY l.created_at, l.id LIMIT ?"  # noqa: S608 -- fixed column list
LEADS_IN_STATE = (
    f"SELECT {_LEAD_COLUMNS} FROM leads l WHERE l.state = ?"  # noqa: S608 -- fixed column list
    " ORDER BY l.created_at, l.id LIMIT ?"
)

# Leads created in [start, end), oldest first (the digest's day).
LEADS_BETWEEN = (
    f"SELECT {_LEAD_COLUMNS} FROM leads l WHERE l.created_at >= ? AND l.created_at < ?"  # noqa: S608 -- fixed column list
    " ORDER BY l.created_at, l.id"
)

# A lead's state and conversation id (is it still open? where do escalations attach?).
LEAD_STATE = "SELECT state, conversation_id FROM leads WHERE id = ?"

# Escalations: every (lead id, step) recorded; record one unless recorded already.
ESCALATIONS = "SELECT lead_id, step FROM lead_escalations"
INSERT_ESCALATION = (
    "INSERT INTO lead_escalations (lead_id, step, at) VALUES (?, ?, ?)"
    " ON CONFLICT (lead_id, step) DO NOTHING"
)

# Digests: the days sent; take a day unless taken; give it back after a failed send.
DIGEST_DAYS = "SELECT day FROM lead_digests"
TAKE_DIGEST_DAY = "INSERT INTO lead_digests (day, at) VALUES (?, ?) ON CONFLICT (day) DO NOTHING"
RELEASE_DIGEST_DAY = "DELETE FROM lead_digests WHERE day = ?"

# (category, received_at, raw body of low-rated ones) of the newest version of each
# conversation received in [start, end), for the digest's figures.
DAY_CONVERSATIONS = (
    "SELECT category, received_at, CASE WHEN category = 'low-rated' THEN raw END"
    " FROM conversations c WHERE received_at >= ? AND received_at < ?"
    " AND version = (SELECT MAX(version) FROM conversations WHERE conv_key = c.conv_key)"
    " ORDER BY received_at"
)

# Slack interactivity: forget request signatures older than the replay window; record one
# (no row inserted: seen already, a replay).
FORGET_SLACK_REQUESTS = "DELETE FROM slack_requests WHERE at < ?"
RECORD_SLACK_REQUEST = (
    "INSERT INTO slack_requests (signature, at) VALUES (?, ?) ON CONFLICT (signature) DO NOTHING"
)

# -- the console (relay.console) -----------------------------------------------------------

# Console users: add one (or set a new password hash), remove one, one's hash, how many.
UPSERT_CONSOLE_USER = (
    "INSERT INTO console_users (name, password_hash, created_at) VALUES (?, ?, ?)"
    " ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash"
)
CONSOLE_USER_EXISTS = "SELECT 1 FROM console_users WHERE name = ?"
DELETE_CONSOLE_USER = "DELETE FROM console_users WHERE name = ?"
CONSOLE_USER_HASH = "SELECT password_hash FROM console_users WHERE name = ?"
CONSOLE_USER_COUNT = "SELECT COUNT(*) FROM console_users"
CONSOLE_USERS = "SELECT name, created_at FROM console_users ORDER BY name"
# What a session cookie is checked against: the password hash and when the user last signed
# out; signing out sets that time, always to a value it never had (a millisecond past the
# previous one if the clock says otherwise), so the cookies signed with the old one end.
CONSOLE_USER_SESSION = "SELECT password_hash, signed_out_at FROM console_users WHERE name = ?"
SIGN_OUT_CONSOLE_USER = (
    "UPDATE console_users SET signed_out_at = max(?, COALESCE(signed_out_at, 0) + 0.001)"
    " WHERE name = ?"
)

# The audit log: record one operator action; the newest N, newest first.
INSERT_AUDIT = (
    "INSERT INTO console_audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)"
)
AUDIT_LOG = (
    "SELECT id, at, actor, action, target, detail FROM console_audit ORDER BY id DESC LIMIT ?"
)

# The visitor's name and email address as the body gives them, text as its bytes (BLOB): a
# lone surrogate escape ("\ud800", JSON the hook accepts) comes back from json_extract as text
# that is not UTF-8, which Python cannot read as text (relay.store.console.shown decodes it).
_BODY_TEXT = (
    "(SELECT CASE WHEN typeof(v) = 'text' THEN CAST(v AS BLOB) ELSE v END FROM"
    " (SELECT CASE WHEN json_valid(CAST(c.raw AS TEXT))"
    " THEN json_extract(CAST(c.raw AS TEXT), '$.visitor.{field}') END AS v))"
)
# A stored conversation as the console lists it: id, conv_key, version, category, received_at,
# visitor name, visitor email (read from the raw body; NULL where it is not JSON).
_CONVERSATION_COLUMNS = (
    "SELECT c.id, c.conv_key, c.version, c.category, c.received_at,"  # noqa: S608 -- constants
    f" {_BODY_TEXT.format(field='name')} AS vname, {_BODY_TEXT.format(field='email')} AS vemail"
    " FROM conversations c"
)
# The newest version of each conversation received in [start, end), of a category (NULL: any),
# newest first; the caller matches the visitor's name and email (str.casefold: SQL's lower()
# folds ASCII only) and stops reading at its limit. Parameters: start, end, category, category.
FIND_CONVERSATIONS = (
    f"SELECT * FROM ({_CONVERSATION_COLUMNS}"  # noqa: S608 -- fixed column list
    " WHERE c.version = (SELECT MAX(version) FROM conversations WHERE conv_key = c.conv_key))"
    " AS found WHERE received_at >= ? AND received_at < ? AND (? IS NULL OR category = ?)"
    " ORDER BY received_at DESC, id DESC"
)
# One stored conversation (any version) by id; every version of a conversation key.
CONVERSATION_ROW = f"{_CONVERSATION_COLUMNS} WHERE c.id = ?"
CONVERSATION_VERSIONS = f"{_CONVERSATION_COLUMNS} WHERE c.conv_key = ? ORDER BY c.version"

# Destination health since a time, per channel and named destination (NULL: the channel's
# default): deliveries, attempts, failed attempts (every
# attempt of a delivery not sent, every attempt but the last of one sent).
DELIVERY_HEALTH = (
    "SELECT channel, json_extract(action, '$.destination'), COUNT(*), SUM(attempts),"
    " SUM(attempts - CASE WHEN status = 'sent' THEN 1 ELSE 0 END)"
    " FROM deliveries WHERE updated_at >= ? AND attempts > 0 GROUP BY 1, 2 ORDER BY 1, 2"
)
# The newest error per destination since a time: channel, destination, error, when, newest
# first.
RECENT_ERRORS = (
    "SELECT channel, json_extract(action, '$.destination'), last_error, updated_at"
    " FROM deliveries WHERE updated_at >= ? AND last_error IS NOT NULL"
    " ORDER BY updated_at DESC, id DESC"
)

# (category, received_at, raw body) of the newest version of each conversation received in
# [start, end), for the console's statistics.
PERIOD_CONVERSATIONS = (
    "SELECT category, received_at, raw FROM conversations c"
    " WHERE received_at >= ? AND received_at < ?"
    " AND version = (SELECT MAX(version) FROM conversations WHERE conv_key = c.conv_key)"
    " ORDER BY received_at"
)

# The finished attempts of one delivery, oldest first: at, outcome, detail.
DELIVERY_ATTEMPTS = (
    "SELECT at, outcome, detail FROM delivery_attempts WHERE delivery_id = ? ORDER BY id"
)

# Drop one quarantined body (it was accepted again).
DELETE_QUARANTINE_ENTRY = "DELETE FROM quarantine WHERE id = ?"
