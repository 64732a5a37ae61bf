//! What the tests of every crate share, in one place: the moto plumbing,
//! fixtures (shops, programs, money), fakes of the platforms the engine
//! talks to, and fault injection. Used only as a dev-dependency.

pub mod fakes;
