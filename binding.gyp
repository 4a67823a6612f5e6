{
  "targets": [
    {
      "target_name": "uffd",
      "sources": ["src/uffd/native/uffd.c"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
