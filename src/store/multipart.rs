//! Feeding a [`MultipartUpload`] with bounded concurrency (object_store's
//! `WriteMultipart`): at most `max_in_flight` parts upload at once, and
//! [`PartWriter::put`] waits for room, so memory is bounded by part size
//! times parts in flight.

use tokio::task::JoinSet;

use super::{MultipartUpload, Part, StoreError};

/// Uploads parts with at most a fixed number in flight.
pub struct PartWriter {
    upload: Box<dyn MultipartUpload>,
    in_flight: JoinSet<Result<(), StoreError>>,
    max_in_flight: usize,
}

impl PartWriter {
    /// Wraps an upload; `max_in_flight` is at least 1.
    pub fn new(upload: Box<dyn MultipartUpload>, max_in_flight: usize) -> Self {
        Self {
            upload,
            in_flight: JoinSet::new(),
            max_in_flight: max_in_flight.max(1),
        }
    }

    /// Starts uploading the next part, first waiting until fewer than
    /// `max_in_flight` parts are in flight.
    pub async fn put(&mut self, part: Part) -> Result<(), StoreError> {
        while self.in_flight.len() >= self.max_in_flight {
            self.join_one().await?;
        }
        self.in_flight.spawn(self.upload.put_part(part));
        Ok(())
    }

    /// Waits until every part started so far has been stored.
    pub async fn flush(&mut self) -> Result<(), StoreError> {
        while !self.in_flight.is_empty() {
            self.join_one().await?;
        }
        Ok(())
    }

    /// Waits for every part, then publishes the object.
    pub async fn complete(mut self) -> Result<(), StoreError> {
        self.flush().await?;
        self.upload.complete().await
    }

    /// Cancels parts in flight and discards the upload.
    pub async fn abort(mut self) -> Result<(), StoreError> {
        self.in_flight.shutdown().await;
        self.upload.abort().await
    }

    async fn join_one(&mut self) -> Result<(), StoreError> {
        match self.in_flight.join_next().await {
            Some(Ok(result)) => result,
            Some(Err(join)) => std::panic::resume_unwind(join.into_panic()),
            None => Ok(()),
        }
    }
}
