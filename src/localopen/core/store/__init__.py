"""What is kept in SQLite: the schema, the library of model files, results and measurements, file hashes."""
