fn main() {
    std::process::exit(kubesu::main());
}
