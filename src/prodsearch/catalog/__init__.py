"""The catalog: source table config, text preparation, demo generator, importers, stats."""
