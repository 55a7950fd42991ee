//! Streamed responses: SSE, Gemini JSON-array and AWS event-stream readers.
