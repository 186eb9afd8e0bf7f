#[cfg(test)]
mod tests {
    #[test]
    fn migrate_experiment() {
        let t = format!("a: {}{}", "[".repeat(100), "]".repeat(100));
        println!(
            "{:?}",
            serde_saphyr::from_str::<serde_json::Value>(&t).map_err(|e| e
                .to_string()
                .lines()
                .next()
                .unwrap()
                .to_string())
        );
        let t = format!(
            "a:\n{}",
            (0..2000)
                .map(|i| format!("{}- x\n", " ".repeat(i)))
                .collect::<String>()
        );
        let v = serde_saphyr::from_str::<serde_json::Value>(&t).unwrap();
        println!("{}", &v.to_string()[..100]);
        let t = format!(
            "a:\n{}",
            (0..2000)
                .map(|i| format!("{}- \n", " ".repeat(2 * i)))
                .collect::<String>()
        );
        let v = serde_saphyr::from_str::<serde_json::Value>(&t);
        println!(
            "{:?}",
            v.map(|v| v.to_string().len()).map_err(|e| e
                .to_string()
                .lines()
                .next()
                .unwrap()
                .to_string())
        );
    }
}
