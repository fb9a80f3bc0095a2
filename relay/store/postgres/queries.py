"""Every SQL statement of the PostgreSQL store, by name (placeholders are psycopg's %s)."""

from __future__ import annotations

# The channel intake and retry_now notify when something became due, and relays listen on.
CHANNEL = "relay_deliveries"
NOTIFY = "SELECT pg_notify('relay_deliveries', '')"
NOTIFY_PAYLOAD = "SELECT pg_notify('relay_deliveries', %s)"

# -- intake ------------------------------------------------------------------------------------
# The next version is computed inside the INSERT; a conflict on (conv_key, content_hash) is an
# exact duplicate, one on (conv_key, version) another relay numbering a version at the same
# time: either way nothing is inserted, and the caller looks again.
INSERT_CONVERSATION = (
    "INSERT INTO conversations (conv_key, account_id, channel_id, version, content_hash,"
    " category, received_at, raw)"
    " SELECT %s, %s, %s, COALESCE(MAX(version), 0) + 1, %s, %s, %s, %s"
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
    " AND (next_attempt_at, id) > (%(at)s, %(id)s)"
    " ORDER BY next_attempt_at, id LIMIT %(page)s"
)
DUE_SCAN = (
    "SELECT id, action, next_attempt_at FROM deliveries"
    " WHERE status IN ('pending', 'retrying') AND next_attempt_at <= %(now)s"
    " AND (next_attempt_at, id) > (%(at)s, %(id)s)"
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
MARK_SENT = (
    "UPDATE deliveries SET status = 'sent', updated_at = %(now)s, last_error = NULL,"
    " sent_to = %(sent_to)s, claimed_by = NULL, claim_token = NULL, claimed_until = NULL"
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
    " d.created_at, d.next_attempt_at, d.updated_at, d.last_error, d.sent_to"
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
# As the SQLite store's VISITOR_HISTORY: the same visitor's conversations in the same account,
# received no later than the given one, matched by visitor id when it has one, else by email
# address (case-insensitive), read from the stored raw bodies (relay_json: NULL, matching
# nothing, for a body that is not JSON). One row per stored version, in the order stored:
# conv_key, category, begin time in Unix seconds (beginAt, else when it was received).
VISITOR_HISTORY = (
    "WITH cur AS (SELECT conv_key, account_id, received_at,"
    " body -> 'visitor' ->> 'id' AS vid, lower(body -> 'visitor' ->> 'email') AS vemail"
    " FROM (SELECT conv_key, account_id, received_at, relay_json(raw) AS body"
    " FROM conversations WHERE id = %s) AS c),"
    " others AS (SELECT c.id, c.conv_key, c.category, c.received_at, relay_json(c.raw) AS body"
    " FROM conversations c JOIN cur ON c.account_id = cur.account_id"
    " WHERE c.conv_key <> cur.conv_key AND c.received_at <= cur.received_at)"
    " SELECT o.conv_key, o.category,"
    " COALESCE(CASE WHEN jsonb_typeof(o.body -> 'beginAt') = 'number'"
    " THEN (o.body ->> 'beginAt')::double precision / 1000.0 END, o.received_at)"
    " FROM others o CROSS JOIN cur"
    " WHERE (cur.vid IS NOT NULL AND cur.vid <> ''"
    "      AND o.body -> 'visitor' ->> 'id' = cur.vid)"
    "  OR (cur.vid IS NULL AND cur.vemail IS NOT NULL AND cur.vemail <> ''"
    "      AND lower(o.body -> 'visitor' ->> 'email') = cur.vemail)"
    " ORDER BY o.id"
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
