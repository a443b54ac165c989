//! Signing up, in and out: email and password, external identity providers,
//! verification and password reset.

mod device;
pub mod external;
pub mod login;
pub mod logout;
pub mod password;
pub mod signup;
pub mod verify;
