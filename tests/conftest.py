import os

# Before anything imports protobuf: the upb extension segfaults at exit after a TFT trace (ARCHITECTURE.md, "Pitfalls").
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Fixtures for a real MySQL (MariaDB) trial store: mariadb, mysql_store_config, store_config.
pytest_plugins = ["mysql_server"]
