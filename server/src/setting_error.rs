//! The error of one setting, shared by the settings loader and the parts that read their own
//! settings (traces): each names the setting it is about.

/// A problem with a setting, phrased for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct SettingError {
    pub setting: String,
    pub message: String,
}
