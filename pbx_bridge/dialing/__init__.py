"""Click-to-call and hang-up (issue 14 items 1 and 2): the PhoneCalls POST and DELETE."""
