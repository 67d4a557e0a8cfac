// Validates a HAR file against the HAR 1.2 JSON Schema (har-validator, with har-schema).
// Usage: node validate.js FILE.har; prints "valid", or the schema's errors and exits 1.
"use strict";
const fs = require("fs");
const validate = require("har-validator");

const har = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
validate.har(har).then(
  () => console.log("valid"),
  (error) => {
    console.error(JSON.stringify(error.errors || error.message, null, 2));
    process.exit(1);
  },
);
