# Finds every third-party library the way its Debian package supports: CMake config packages where
# Debian ships them, pkg-config where it does not (cpp-httplib, PCRE2, OpenBLAS, libpq).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

find_package(nlohmann_json 3.10 CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(doctest CONFIG REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(RocksDB CONFIG REQUIRED)

pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
# Unicode normalisation, case folding and character categories for the lexical analyzer.
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
# PDF text extraction for the file source (Debian: libpoppler-cpp-dev).
pkg_check_modules(POPPLER_CPP REQUIRED IMPORTED_TARGET poppler-cpp)

# OpenBLAS: Debian keeps cblas.h in a per-variant folder that its pkg-config file names.
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)

# FAISS's CMake package expects OpenMP and BLAS to be found by the consumer first.
find_package(OpenMP REQUIRED)
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_package(faiss CONFIG REQUIRED)

# Governance: token hashing, random token bodies, audit checkpoint signatures (Ed25519).
find_package(OpenSSL REQUIRED)

# Snowball stemmers: Debian's libstemmer-dev ships a header and a library but neither a
# pkg-config file nor a CMake package, so they are found by name.
find_path(LIBSTEMMER_INCLUDE_DIR libstemmer.h REQUIRED)
find_library(LIBSTEMMER_LIBRARY stemmer REQUIRED)
add_library(sluice_libstemmer INTERFACE IMPORTED)
target_include_directories(sluice_libstemmer INTERFACE "${LIBSTEMMER_INCLUDE_DIR}")
target_link_libraries(sluice_libstemmer INTERFACE "${LIBSTEMMER_LIBRARY}")

# zlib reads gzip-compressed data sets (BEIR's corpus.jsonl.gz).
find_package(ZLIB REQUIRED)
