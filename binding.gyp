{
  "targets": [
    {
      "target_name": "uffd",
      "sources": [
        "src/uffd/native/uffd.c",
        "src/uffd/native/args.c",
        "src/uffd/native/memory.c",
        "src/uffd/native/ioctls.c",
        "src/uffd/native/poll.c",
        "src/uffd/native/blocking-io.c"
      ],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
