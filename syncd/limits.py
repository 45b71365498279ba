"""The wire's limits (PROTOCOL.md): what a request, a push, a page and a document may hold.

Constants, not settings: a client is written against them. A request past one is refused
whole with a 4xx; a document past MAX_DOC_BYTES refuses the op that would grow it.
"""

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_OPS_PER_PUSH = 1000
MAX_PULL_LIMIT = 5000
DEFAULT_PULL_LIMIT = 500
# A clock more than this far ahead of the server is canonicalised to the server's clock.
MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
# A note body's merged CRDT state may not grow past this.
MAX_DOC_BYTES = 4 * 1024 * 1024
