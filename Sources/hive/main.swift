print("hive")
