//! What the response of a forwarded request needs from its flow: the CORS origin, the upload
//! watch and the mint watch, each taken once by the shim's response callbacks.

use crate::flow::RequestFlow;
use crate::mint_watch::MintWatch;
use crate::uploads::UploadWatch;

impl RequestFlow {
    /// The `Origin` whose response gets CORS headers (taken once).
    pub fn take_cors_origin(&mut self) -> Option<String> {
        self.cors_origin.take()
    }

    /// The upload watch of the response (taken once).
    pub fn take_upload_watch(&mut self) -> Option<UploadWatch> {
        self.upload_watch.take()
    }

    /// The mint watch of the response, while it reads.
    pub fn mint_mut(&mut self) -> Option<&mut MintWatch> {
        self.mint.as_deref_mut()
    }

    /// The mint watch, done reading (taken once).
    pub fn take_mint(&mut self) -> Option<Box<MintWatch>> {
        self.mint.take()
    }

    /// The filter answered in the provider's place: no CORS decoration, nothing minted.
    pub fn replaced(&mut self) {
        self.cors_origin = None;
        self.mint = None;
    }
}
