import LinliServer
print("linli")
