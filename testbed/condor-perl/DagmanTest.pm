# A stand-in for HTCondor's test-suite DagmanTest.pm: the callbacks most DAGMan tests
# register (a DAG is expected to be submitted, run, and end with no abort, hold or
# abnormal exit).
package DagmanTest;
use strict;
use warnings;
use CondorTest;

sub register_event_handlers {
    my ($name) = @_;
    CondorTest::RegisterSubmit($name, sub { CondorTest::debug("submitted\n", 1); });
    CondorTest::RegisterExecute($name, sub { my %info = @_; CondorTest::debug("running, cluster $info{cluster}\n", 1); });
    CondorTest::RegisterExitedAbnormal($name, sub { die "Want to see only submit, execute and successful completion\n"; });
    CondorTest::RegisterAbort($name, sub { die "Abort event NOT expected\n"; });
    CondorTest::RegisterHold($name, sub { die "Held event NOT expected\n"; });
}

1;
