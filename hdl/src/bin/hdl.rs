fn main() {
    print!("{}", hdl::regmap::markdown());
}
