// Every npm script starts here: on an older Node, one line naming the version needed, instead of
// ERR_UNKNOWN_FILE_EXTENSION ".ts" or a syntax error deeper down. CommonJS and old syntax on
// purpose: it must run on the Node it refuses.
"use strict"
var parts = process.versions.node.split(".").map(Number)
var major = parts[0]
var minor = parts[1]
if (major < 22 || (major === 22 && minor < 18) || major === 23) {
  console.error("Wingmate needs Node.js 22.18+ or 24+ (it runs TypeScript directly); this is " + process.version + ".")
  process.exit(1)
}
