pub mod am_sim;
pub mod demo;
pub mod generate;
pub mod inspect;
pub mod oct;
pub mod ps;
