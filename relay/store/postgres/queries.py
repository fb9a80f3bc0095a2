"""Every SQL statement of the PostgreSQL store, by name (placeholders are psycopg's %s)."""

from __future__ import annotations

# The channel intake and retry_now notify when something became due, and relays listen on.
CHANNEL = "relay_deliveries"
NOTIFY = "SELECT pg_notify('relay_deliveries', '')"
NOTIFY_PAYLOAD = "SELECT pg_notify('relay_deliveries', %s)"

# -- intake ------------------------------------------------------------------------------------
# The next version is computed inside the INSERT; a conflict on (conv_key, content_hash) is an
# exact duplicate, one on (conv_key, version) another relay numbering a version at the same
# time: either way nothing is inserted, and the caller looks again. begin_at: the body's beginAt
# in Unix seconds, or NULL (read from the body when needed).
INSERT_CONVERSATION = (
    "INSERT INTO conversations (conv_key, account_id, channel_id, version, content_hash,"
    " category, received_at, raw, begin_at)"
    " SELECT %s, %s, %s, COALESCE(MAX(version), 0) + 1, %s, %s, %s, %s, %s"
    " FROM conversations WHERE conv_key = %s"
    " ON CONFLICT DO NOTHING RETURNING id, version"
)
FIND_CONVERSATION = (
    "SELECT id, version FROM conversations WHERE conv_key = %s AND content_hash = %s"
)
INSERT_DELIVERY = (
    "INSERT INTO deliveries (conversation_id, dedupe_key, rule, channel, action, category,"
    " created_at, next_attempt_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (dedupe_key) DO NOTHING"
)
INSERT_QUARANTINE = (
    "INSERT INTO quarantine (received_at, reason, message, remote, size, body)"
    " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id"
)
TRIM_QUARANTINE_ROWS = (
    "DELETE FROM quarantine WHERE id <= (SELECT id FROM quarantine"
    " ORDER BY id DESC LIMIT 1 OFFSET %s)"
)
TRIM_QUARANTINE_BYTES = (
    "DELETE FROM quarantine WHERE id <= (SELECT MAX(id) FROM (SELECT id,"
    " SUM(length(body)) OVER (ORDER BY id DESC) AS kept FROM quarantine) AS k"
    " WHERE kept > %s)"
)

# -- the delivery queue ------------------------------------------------------------------------
# recover_claimed: what this relay held before it restarted, and any lease that expired.
RECOVER = (
    "UPDATE deliveries SET status = 'retrying', next_attempt_at = %(now)s, updated_at = %(now)s,"
    " last_error = 'interrupted while sending' || COALESCE(' (before: ' || last_error || ')', ''),"
    " claimed_by = NULL, claim_token = NULL, claimed_until = NULL"
    " WHERE status = 'sending' AND (claimed_by = %(holder)s OR claimed_until <= %(now)s)"
)
# Candidates for a claim, in due order, one page at a time (keyset after (at, id)): first the
# deliveries whose lease expired (their holder died or lost the database), then the due ones.
# SKIP LOCKED: a row another relay is claiming right now is passed over, not waited for.
EXPIRED_PAGE = (
    "SELECT id, action, next_attempt_at FROM deliveries"
    " WHERE status = 'sending' AND claimed_until <= %(now)s"
    " AND (next_attempt_at, id) > (%(at)s, %(id)s)"
    " ORDER BY next_attempt_at, id LIMIT %(page)s FOR UPDATE SKIP LOCKED"
)
DUE_PAGE = (
    "SELECT id, action, next_attempt_at FROM deliveries"
    " WHERE status IN ('pending', 'retrying') AND next_attempt_at <= %(now)s"
    " AND (next_attempt_at, id) > (%(at)s, %(id)s)"
    " ORDER BY next_attempt_at, id LIMIT %(page)s FOR UPDATE SKIP LOCKED"
)
# With ``admit`` (per-destination limits) the candidates are read without a lock, and only
# those admitted are locked (LOCK_CHOSEN): a delivery this relay has no room for stays free
# for another relay's claim meanwhile.
EXPIRED_SCAN = (
    "SELECT id, action, next_attempt_at FROM deliveries"
    " WHERE status = 'sending' AND claimed_until <= %(now)s"
    " AND (next_attempt_at, id) > (%(at)s, %(id)s) AND action <> ALL(%(refused)s::text[])"
    " ORDER BY next_attempt_at, id LIMIT %(page)s"
)
DUE_SCAN = (
    "SELECT id, action, next_attempt_at FROM deliveries"
    " WHERE status IN ('pending', 'retrying') AND next_attempt_at <= %(now)s"
    " AND (next_attempt_at, id) > (%(at)s, %(id)s) AND action <> ALL(%(refused)s::text[])"
    " ORDER BY next_attempt_at, id LIMIT %(page)s"
)
LOCK_CHOSEN = (
    "SELECT id FROM deliveries WHERE id = ANY(%(ids)s)"
    " AND ((status IN ('pending', 'retrying') AND next_attempt_at <= %(now)s)"
    " OR (status = 'sending' AND claimed_until <= %(now)s))"
    " FOR UPDATE SKIP LOCKED"
)
# A claim is a lease: the holder, its token and the expiry. Taking over an expired lease notes
# the interrupted attempt in last_error, as recover_claimed does.
CLAIM = (
    "UPDATE deliveries d SET status = 'sending', attempts = d.attempts + 1,"
    " updated_at = %(now)s, claimed_by = %(holder)s, claim_token = %(token)s,"
    " claimed_until = %(until)s,"
    " last_error = CASE WHEN d.status = 'sending' THEN 'interrupted while sending'"
    " || COALESCE(' (before: ' || d.last_error || ')', '') ELSE d.last_error END"
    " FROM conversations c WHERE c.id = d.conversation_id AND d.id = ANY(%(ids)s)"
    " RETURNING d.id, d.conversation_id, d.rule, d.channel, d.action, d.category,"
    " d.attempts, d.created_at, d.dedupe_key, d.done_recipients, c.raw"
)
# When to look again: the earliest queued delivery, or another relay's lease that expires
# (this relay's own leases end with its own sends).
NEXT_DUE = (
    "SELECT LEAST("
    "(SELECT MIN(next_attempt_at) FROM deliveries WHERE status IN ('pending', 'retrying')"
    " AND next_attempt_at > %(after)s),"
    " (SELECT MIN(claimed_until) FROM deliveries WHERE status = 'sending'"
    " AND claimed_by <> %(holder)s AND claimed_until > %(after)s))"
)
# An outcome is recorded only by the claim that holds the delivery (its token).
# An email really sent keeps its Message-ID as the external_ref (NULL leaves it as it is).
MARK_SENT = (
    "UPDATE deliveries SET status = 'sent', updated_at = %(now)s, last_error = NULL,"
    " sent_to = %(sent_to)s, external_ref = COALESCE(%(ref)s, external_ref),"
    " claimed_by = NULL, claim_token = NULL, claimed_until = NULL"
    " WHERE id = %(id)s AND status = 'sending' AND claim_token = %(token)s"
)
MARK_RETRY = (
    "UPDATE deliveries SET status = 'retrying', next_attempt_at = %(at)s,"
    " last_error = %(error)s, updated_at = %(now)s, done_recipients = %(done)s,"
    " claimed_by = NULL, claim_token = NULL, claimed_until = NULL"
    " WHERE id = %(id)s AND status = 'sending' AND claim_token = %(token)s"
)
MARK_DEAD = (
    "UPDATE deliveries SET status = 'dead', last_error = %(error)s, updated_at = %(now)s,"
    " done_recipients = %(done)s, claimed_by = NULL, claim_token = NULL, claimed_until = NULL"
    " WHERE id = %(id)s AND status = 'sending' AND claim_token = %(token)s"
)
RELEASE = (
    "UPDATE deliveries SET status = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END,"
    " attempts = attempts - 1, next_attempt_at = %(now)s, updated_at = %(now)s,"
    " claimed_by = NULL, claim_token = NULL, claimed_until = NULL"
    " WHERE id = %(id)s AND status = 'sending' AND claim_token = %(token)s"
)

# Keep the id a CRM or help desk gave what a delivery created or updated, and/or why it
# created nothing (as the last error); a NULL parameter leaves that column as it is. Recorded
# whoever holds the delivery now: the object exists at the destination either way.
RECORD_EXTERNAL_REF = (
    "UPDATE deliveries SET external_ref = COALESCE(%(ref)s, external_ref),"
    " last_error = COALESCE(%(note)s, last_error) WHERE id = %(id)s"
)
# The id recorded by this delivery or, failing that, by the latest delivery of the same
# conversation (conv_key, any version) and the same action.
KNOWN_EXTERNAL_REF = (
    "SELECT e.external_ref FROM deliveries d"
    " JOIN conversations c ON c.id = d.conversation_id"
    " JOIN conversations ec ON ec.conv_key = c.conv_key"
    " JOIN deliveries e ON e.conversation_id = ec.id AND e.action = d.action"
    " WHERE d.id = %s AND e.external_ref IS NOT NULL"
    " ORDER BY e.id = d.id DESC, e.id DESC LIMIT 1"
)

# The leases of 'sending' deliveries: this relay's, other relays' live ones, and expired ones
# (held by a relay that stopped answering; the next claim takes them).
LEASES = (
    "SELECT CASE WHEN claimed_until <= %(now)s THEN 'expired'"
    " WHEN claimed_by = %(holder)s THEN 'this_relay' ELSE 'other_relays' END, COUNT(*)"
    " FROM deliveries WHERE status = 'sending' GROUP BY 1"
)

# -- operator ----------------------------------------------------------------------------------
COUNTS = (
    "SELECT CASE WHEN status = 'sent' AND sent_to = 'outbox' THEN 'outbox'"
    " ELSE status END, COUNT(*) FROM deliveries GROUP BY 1"
)
OLDEST_ACTIVE = (
    "SELECT MIN(created_at) FROM deliveries WHERE status IN ('pending', 'retrying', 'sending')"
)
DELIVERY_COLUMNS = (
    "SELECT d.id, d.conversation_id, c.conv_key, d.rule, d.channel, d.status, d.attempts,"
    " d.created_at, d.next_attempt_at, d.updated_at, d.last_error, d.sent_to,"
    " d.action::jsonb ->> 'destination'"
    " FROM deliveries d JOIN conversations c ON c.id = d.conversation_id"
)
DELIVERIES = DELIVERY_COLUMNS + " WHERE d.status = ANY(%s) ORDER BY d.id LIMIT %s"
DELIVERIES_OF = (
    DELIVERY_COLUMNS + " WHERE d.status = ANY(%s) AND d.conversation_id = %s ORDER BY d.id LIMIT %s"
)
DELIVERY = DELIVERY_COLUMNS + " WHERE d.id = %s"
_RESET = (
    "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = %(now)s,"
    " created_at = %(now)s, updated_at = %(now)s"
)
RETRY_DEAD = _RESET + " WHERE status = 'dead'"
RETRY_ONE = _RESET + " WHERE id = %(id)s AND status IN ('pending', 'retrying', 'dead')"
CONVERSATION_RAW = "SELECT raw, category, conv_key FROM conversations WHERE id = %s"
LATEST_VERSION = "SELECT id FROM conversations WHERE conv_key = %s ORDER BY version DESC LIMIT 1"
# As the SQLite store's VISITOR_VERSIONS_BY_ID and _BY_EMAIL: the same visitor's conversations
# in the same account, stored before the given one and received no later, matched by visitor id
# when it has one, else by email address (case-insensitive), read from the stored raw bodies
# (relay_json: NULL, matching nothing, for a body that is not JSON). One row per stored version,
# in the order stored (SQLite's: newest first): conv_key, category, begin time in Unix seconds
# (beginAt, else when it was received; the begin_at column written at intake, the body read
# only for a row without it). A beginAt beyond any double (an integer of hundreds of digits:
# accepted, its column NULL) reads as +-Infinity, as SQLite reads that JSON number, not as an
# error failing the whole history; the history line leaves such a chat out
# (relay.render.view.history_line). One below the smallest normal double (1e-400, in a body
# stored before the column) reads as 0, not as an underflow error (SQLite: 0 or a subnormal,
# the same moment to within 1e-310 s).
VISITOR_HISTORY = (
    "WITH cur AS (SELECT id, conv_key, account_id, received_at,"
    " relay_json(raw) -> 'visitor' ->> 'id' AS vid,"
    " lower(relay_json(raw) -> 'visitor' ->> 'email') AS vemail"
    " FROM conversations WHERE id = %(id)s),"
    # The visitor expressions are those of the conversations_visitor_* indexes (migration 4);
    # at most the newest %(rows)s versions of the visitor are read (relay.store.operator).
    " others AS ("
    " (SELECT o.id, o.conv_key, o.category, o.received_at, o.begin_at, o.raw"
    " FROM conversations o JOIN cur"
    " ON o.account_id = cur.account_id AND (relay_json(o.raw) -> 'visitor' ->> 'id') = cur.vid"
    " WHERE cur.vid IS NOT NULL AND cur.vid <> '' AND o.id < cur.id"
    " AND o.conv_key <> cur.conv_key AND o.received_at <= cur.received_at"
    " ORDER BY o.id DESC LIMIT %(rows)s)"
    " UNION ALL"
    " (SELECT o.id, o.conv_key, o.category, o.received_at, o.begin_at, o.raw"
    " FROM conversations o JOIN cur ON o.account_id = cur.account_id"
    " AND lower(relay_json(o.raw) -> 'visitor' ->> 'email') = cur.vemail"
    " WHERE cur.vid IS NULL AND cur.vemail IS NOT NULL AND cur.vemail <> '' AND o.id < cur.id"
    " AND o.conv_key <> cur.conv_key AND o.received_at <= cur.received_at"
    " ORDER BY o.id DESC LIMIT %(rows)s))"
    " SELECT o.conv_key, o.category,"
    " COALESCE(o.begin_at, (SELECT CASE"
    " WHEN abs(b.ms) < 2.2250738585072014e-308 THEN 0.0::double precision"
    " WHEN abs(b.ms) <= 1.7976931348623157e308 THEN b.ms::double precision / 1000.0"
    " WHEN b.ms > 0 THEN 'Infinity'::double precision ELSE '-Infinity'::double precision END"
    " FROM (SELECT (relay_json(o.raw) ->> 'beginAt')::numeric AS ms"
    " WHERE jsonb_typeof(relay_json(o.raw) -> 'beginAt') = 'number') b), o.received_at)"
    " FROM others o ORDER BY o.id"
)
# As the SQLite store's SENT_EMAIL_IDS: the Message-IDs of the emails really sent about the
# visitor of a delivery's conversation (same account; same chat, or the same visitor id, else
# the same email address; the newest %(rows)s conversations), other than that delivery's own,
# newest first.
SENT_EMAIL_IDS = (
    "WITH cur AS (SELECT d.id AS did, c.conv_key, c.account_id,"
    " relay_json(c.raw) -> 'visitor' ->> 'id' AS vid,"
    " lower(relay_json(c.raw) -> 'visitor' ->> 'email') AS vemail"
    " FROM deliveries d JOIN conversations c ON c.id = d.conversation_id WHERE d.id = %(id)s),"
    " convs AS ("
    " SELECT o.id FROM conversations o JOIN cur ON o.conv_key = cur.conv_key"
    " UNION"
    " (SELECT o.id FROM conversations o JOIN cur"
    " ON o.account_id = cur.account_id AND (relay_json(o.raw) -> 'visitor' ->> 'id') = cur.vid"
    " WHERE cur.vid IS NOT NULL AND cur.vid <> '' ORDER BY o.id DESC LIMIT %(rows)s)"
    " UNION"
    " (SELECT o.id FROM conversations o JOIN cur"
    " ON o.account_id = cur.account_id"
    " AND lower(relay_json(o.raw) -> 'visitor' ->> 'email') = cur.vemail"
    " WHERE cur.vid IS NULL AND cur.vemail IS NOT NULL AND cur.vemail <> ''"
    " ORDER BY o.id DESC LIMIT %(rows)s))"
    " SELECT s.external_ref FROM convs JOIN deliveries s ON s.conversation_id = convs.id"
    " CROSS JOIN cur"
    " WHERE s.channel = 'email' AND s.status = 'sent' AND s.sent_to IS NULL"
    " AND s.external_ref IS NOT NULL AND s.id <> cur.did"
    " ORDER BY s.updated_at DESC, s.id DESC LIMIT %(limit)s"
)
QUARANTINE_COLUMNS = "SELECT id, received_at, reason, message, remote, size, body FROM quarantine"
QUARANTINED = QUARANTINE_COLUMNS + " ORDER BY id DESC LIMIT %s"
QUARANTINE_ENTRY = QUARANTINE_COLUMNS + " WHERE id = %s"
OLDER_THAN = (
    "SELECT id FROM conversations WHERE received_at < %s AND id NOT IN"
    " (SELECT conversation_id FROM deliveries WHERE status IN ('pending', 'retrying',"
    " 'sending')) ORDER BY id"
)
DELIVERY_IDS_OF = "SELECT id FROM deliveries WHERE conversation_id = ANY(%s) ORDER BY id"
PURGE = "DELETE FROM conversations WHERE id = ANY(%s)"
PURGE_QUARANTINE = "DELETE FROM quarantine WHERE received_at < %s"
PROBE = (
    "INSERT INTO health_probe (id, checked_at) VALUES (1, %s)"
    " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at"
)
VACUUM = "VACUUM conversations, deliveries, quarantine"
# Once across relays (purge): a session-level advisory lock, tried, never waited for.
TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))"
UNLOCK = "SELECT pg_advisory_unlock(hashtextextended(%s, 0))"

# -- leads (relay.leads) -----------------------------------------------------------------------
# The columns of a lead, in the order relay.store.leads reads them.
_LEAD_COLUMNS = (
    "l.id, l.conv_key, l.category, l.created_at, l.state, l.visitor_id, l.visitor_email,"
    " l.visitor_name, l.claimed_by, l.claimed_at, l.done_by, l.done_at, l.note, l.answered_at"
)
# Inside an intake: the visitor's open leads of other conversations, by visitor id or email
# (an answered conversation settles them, each by compare-and-set: UPDATE_LEAD).
OPEN_LEADS_OF_VISITOR = (
    f"SELECT {_LEAD_COLUMNS} FROM leads l WHERE l.state = 'open' AND l.conv_key <> %s"  # noqa: S608 -- fixed column list
    " AND ((l.visitor_id IS NOT NULL AND l.visitor_id = %s)"
    " OR (l.visitor_email IS NOT NULL AND l.visitor_email = %s))"
)
# A conversation to follow up becomes a lead, once per conversation key: of two relays (or
# two versions) the unique constraint lets one insert.
INSERT_LEAD = (
    "INSERT INTO leads (conv_key, conversation_id, category, created_at, visitor_id,"
    " visitor_email, visitor_name) VALUES (%s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (conv_key) DO NOTHING"
)
# Compare-and-set: write a lead's new state only if the row still has the old state and
# claimer; no row changed: another relay got there first.
UPDATE_LEAD = (
    "UPDATE leads SET state = %s, claimed_by = %s, claimed_at = %s, done_by = %s, done_at = %s,"
    " note = %s, answered_at = %s WHERE id = %s AND state = %s"
    " AND claimed_by IS NOT DISTINCT FROM %s"
)
LEAD_BY_ID = f"SELECT {_LEAD_COLUMNS} FROM leads l WHERE l.id = %s"  # noqa: S608 -- fixed column list
# The lead of the conversation (any version) stored under a conversation id.
LEAD_OF_CONVERSATION = (
    f"SELECT {_LEAD_COLUMNS} FROM leads l"  # noqa: S608 -- fixed column list
    " JOIN conversations c ON c.conv_key = l.conv_key WHERE c.id = %s"
)
# Leads oldest first, at most N; and those in one state; those created in [start, end).
LEADS = f"SELECT {_LEAD_COLUMNS} FROM leads l ORDER BY l.created_at, l.id LIMIT %s"  # noqa: S608 -- fixed column list
LEADS_IN_STATE = (
    f"SELECT {_LEAD_COLUMNS} FROM leads l WHERE l.state = %s"  # noqa: S608 -- fixed column list
    " ORDER BY l.created_at, l.id LIMIT %s"
)
LEADS_BETWEEN = (
    f"SELECT {_LEAD_COLUMNS} FROM leads l WHERE l.created_at >= %s AND l.created_at < %s"  # noqa: S608 -- fixed column list
    " ORDER BY l.created_at, l.id"
)
# Escalations: every (lead id, step) recorded. Recording one takes the lead's row FOR SHARE
# (a claim or finish waits for this transaction) and inserts only while the lead is open and
# the step unrecorded; the conversation the escalation's deliveries attach to comes back, no
# row if another relay recorded it first or the lead is no longer open.
# Parameters: lead id, step, now.
ESCALATIONS = "SELECT lead_id, step FROM lead_escalations"
RECORD_ESCALATION = (
    "WITH open_lead AS (SELECT id, conversation_id FROM leads"
    " WHERE id = %s AND state = 'open' FOR SHARE),"
    " recorded AS (INSERT INTO lead_escalations (lead_id, step, at)"
    " SELECT id, %s, %s FROM open_lead ON CONFLICT (lead_id, step) DO NOTHING"
    " RETURNING lead_id)"
    " SELECT o.conversation_id FROM recorded r JOIN open_lead o ON o.id = r.lead_id"
)
# Digests: the days sent; take a day unless taken (by this or another relay); give it back
# after a failed send.
DIGEST_DAYS = "SELECT day FROM lead_digests"
TAKE_DIGEST_DAY = "INSERT INTO lead_digests (day, at) VALUES (%s, %s) ON CONFLICT (day) DO NOTHING"
RELEASE_DIGEST_DAY = "DELETE FROM lead_digests WHERE day = %s"
# (category, received_at, raw body of low-rated ones) of the newest version of each
# conversation received in [start, end), for the digest's figures.
DAY_CONVERSATIONS = (
    "SELECT category, received_at, CASE WHEN category = 'low-rated' THEN raw END"
    " FROM conversations c WHERE received_at >= %s AND received_at < %s"
    " AND version = (SELECT MAX(version) FROM conversations WHERE conv_key = c.conv_key)"
    " ORDER BY received_at"
)
# Slack interactivity: forget request signatures older than the replay window; record one
# (no row inserted: seen already, a replay, whichever relay saw it).
FORGET_SLACK_REQUESTS = "DELETE FROM slack_requests WHERE at < %s"
RECORD_SLACK_REQUEST = (
    "INSERT INTO slack_requests (signature, at) VALUES (%s, %s) ON CONFLICT (signature) DO NOTHING"
)

# -- the console (relay.console) ---------------------------------------------------------------
# As the SQLite store's console statements.
UPSERT_CONSOLE_USER = (
    "INSERT INTO console_users (name, password_hash, created_at) VALUES (%s, %s, %s)"
    " ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash"
)
CONSOLE_USER_EXISTS = "SELECT 1 FROM console_users WHERE name = %s"
DELETE_CONSOLE_USER = "DELETE FROM console_users WHERE name = %s"
CONSOLE_USER_HASH = "SELECT password_hash FROM console_users WHERE name = %s"
CONSOLE_USER_COUNT = "SELECT COUNT(*) FROM console_users"
CONSOLE_USERS = "SELECT name, created_at FROM console_users ORDER BY name"
CONSOLE_USER_SESSION = "SELECT password_hash, signed_out_at FROM console_users WHERE name = %s"
SIGN_OUT_CONSOLE_USER = (
    "UPDATE console_users SET signed_out_at = GREATEST(%s, COALESCE(signed_out_at, 0) + 0.001)"
    " WHERE name = %s"
)
INSERT_AUDIT = (
    "INSERT INTO console_audit (at, actor, action, target, detail) VALUES (%s, %s, %s, %s, %s)"
)
AUDIT_LOG = (
    "SELECT id, at, actor, action, target, detail FROM console_audit ORDER BY id DESC LIMIT %s"
)
# A stored conversation as the console lists it (visitor name and email from the raw body:
# relay_json gives NULL for a body that is not JSON).
_CONVERSATION_COLUMNS = (
    "SELECT c.id, c.conv_key, c.version, c.category, c.received_at,"
    " relay_json(c.raw) -> 'visitor' ->> 'name' AS vname,"
    " relay_json(c.raw) -> 'visitor' ->> 'email' AS vemail"
    " FROM conversations c"
)
# As the SQLite store's: start, end, category, category.
FIND_CONVERSATIONS = (
    f"SELECT * FROM ({_CONVERSATION_COLUMNS}"  # noqa: S608 -- fixed column list
    " WHERE c.version = (SELECT MAX(version) FROM conversations WHERE conv_key = c.conv_key))"
    " AS found WHERE received_at >= %s AND received_at < %s"
    " AND (%s::text IS NULL OR category = %s::text)"
    " ORDER BY received_at DESC, id DESC"
)
CONVERSATION_ROW = f"{_CONVERSATION_COLUMNS} WHERE c.id = %s"
CONVERSATION_VERSIONS = f"{_CONVERSATION_COLUMNS} WHERE c.conv_key = %s ORDER BY c.version"
DELIVERY_HEALTH = (
    "SELECT channel, action::jsonb ->> 'destination', COUNT(*), SUM(attempts),"
    " SUM(attempts - CASE WHEN status = 'sent' THEN 1 ELSE 0 END)"
    " FROM deliveries WHERE updated_at >= %s AND attempts > 0 GROUP BY 1, 2 ORDER BY 1, 2"
)
RECENT_ERRORS = (
    "SELECT channel, action::jsonb ->> 'destination', last_error, updated_at"
    " FROM deliveries WHERE updated_at >= %s AND last_error IS NOT NULL"
    " ORDER BY updated_at DESC, id DESC"
)
PERIOD_CONVERSATIONS = (
    "SELECT category, received_at, raw FROM conversations c"
    " WHERE received_at >= %s AND received_at < %s"
    " AND version = (SELECT MAX(version) FROM conversations WHERE conv_key = c.conv_key)"
    " ORDER BY received_at"
)
DELETE_QUARANTINE_ENTRY = "DELETE FROM quarantine WHERE id = %s"
# One finished attempt of a delivery (in the transaction that records its outcome); the
# attempts of one delivery, oldest first.
RECORD_ATTEMPT = (
    "INSERT INTO delivery_attempts (delivery_id, at, outcome, detail) VALUES (%s, %s, %s, %s)"
)
DELIVERY_ATTEMPTS = (
    "SELECT at, outcome, detail FROM delivery_attempts WHERE delivery_id = %s ORDER BY id"
)
