raise ImportError("the vendor SDK this adapter needs is not installed")
