fn main() {
    let t = berth_fuzz::target("layer").unwrap();
    for (i, s) in (t.seeds)().iter().enumerate() {
        let start = std::time::Instant::now();
        (t.run)(s);
        println!("{i} {:?} len {} mode {:#x}", start.elapsed(), s.len(), s[0]);
    }
}
