"""schemathesis hooks for contract/run.sh: bodies for the media types it has no strategy for."""

import schemathesis
from hypothesis import strategies as st

# tus chunks: `PATCH /v1/mobile/uploads/{id}` sends raw bytes.
schemathesis.openapi.media_type("application/offset+octet-stream", st.binary(max_size=4096))
