pub mod cmd;
fn main(){}
