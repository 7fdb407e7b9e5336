//! The API's error: an HTTP status with the message of Docker's `{"message": "..."}` body, as
//! every decoding step returns it and the daemon answers it.

/// An API error: an HTTP status and the message of Docker's `{"message": "..."}` body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status code.
    pub status: u16,
    /// The message.
    pub message: String,
    /// For 405: the methods the path accepts.
    pub allow: Vec<&'static str>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            allow: Vec::new(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, message)
    }

    /// The JSON body, `{"message":"..."}`.
    pub fn body(&self) -> Vec<u8> {
        error_body(&self.message)
    }
}

/// Docker's error body for `message`.
pub fn error_body(message: &str) -> Vec<u8> {
    let mut v = serde_json::to_vec(&serde_json::json!({ "message": message })).unwrap_or_default();
    v.push(b'\n');
    v
}
