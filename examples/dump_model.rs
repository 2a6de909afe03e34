fn main() {
    let layers: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    print!(
        "{}",
        gmmfr::models::generate(&gmmfr::models::ModelConfig::deepseek_v3().with_layers(layers))
    );
}
