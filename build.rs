// The migrations are embedded by `sqlx::migrate!`; a new or changed migration must rebuild
// the crate (sqlx's advice: stable Rust cannot track the directory from the macro).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
