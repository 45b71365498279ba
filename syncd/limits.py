"""The limits a client is written against: what a request, a push, a page, a document, a
field value and a query may hold (docs/protocol.md, Limits).

Constants, not settings. A request past one is refused whole with a 4xx; an op past a
document's or a field's limit is `rejected` alone.
"""

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_OPS_PER_PUSH = 1000
MAX_PULL_LIMIT = 5000
DEFAULT_PULL_LIMIT = 500
# The largest cursor (a log seq) a request may name: far past any log, and its page's seq
# range (cursor, cursor + limit] still fits PostgreSQL's bigint.
MAX_CURSOR = 2**62
# A clock more than this far ahead of the server is canonicalised to the server's clock.
MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
# A note body's merged CRDT state may not grow past this.
MAX_DOC_BYTES = 4 * 1024 * 1024

# Field values: an op past one is `rejected` with `validation` (fields.py).
MAX_TITLE = 500
MAX_TAGS = 50
MAX_TAG = 64
MAX_DESCRIPTION = 100_000
MAX_WORD_GOAL = 100_000_000

# An app's own values: a note's or project's `meta` map and a user's settings. A key is a
# short string; a value is any JSON, measured as its JSON encoding.
MAX_KEY = 64
MAX_JSON_DEPTH = 16
MAX_META_KEYS = 100
MAX_META_BYTES = 16 * 1024  # a note's or project's meta map
MAX_SETTINGS_KEYS = 200
MAX_SETTING_BYTES = 8 * 1024  # one settings value
MAX_SETTINGS_BYTES = 64 * 1024  # all of a user's settings

MIN_PASSWORD = 8
MAX_PASSWORD = 1024

# Pages of the REST views: notes and projects, an entity's history, search results.
MAX_LIST_LIMIT = 200
MAX_HISTORY_PAGE = 200
MAX_SEARCH_LIMIT = 100
# A search query: its characters, and the words of it that are searched for.
MAX_QUERY = 500
MAX_TERMS = 16
