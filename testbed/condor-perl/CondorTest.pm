# A stand-in for HTCondor's test-suite module (src/condor_tests/CondorTest.pm), just
# enough to run its DAGMan tests' .run drivers unchanged against bgrid: RunDagTest runs
# `bgrid submit DAG ARGS` (the command in $ENV{BGRID_SUBMIT}, its words separated by the
# ASCII unit separator \x1f, so that perl needs no module beyond its base) and calls the
# callbacks the driver registered as the DAGMan job's events would have: submit and
# execute, then exited-success (exit 0), exited-failure (any other exit) or
# exited-abnormal (a signal). A callback that dies fails the test, as in HTCondor's.
package CondorTest;
use strict;
use warnings;

my %callbacks;
my $debug = $ENV{BGRID_CONDORTEST_DEBUG} ? 1 : 0;

# node programs and scripts of some tests `use CondorTest` themselves: they find this one too
BEGIN {
    require Cwd;
    require File::Basename;
    my $here = File::Basename::dirname(Cwd::abs_path(__FILE__));
    $ENV{PERL5LIB} = defined $ENV{PERL5LIB} && $ENV{PERL5LIB} ne '' ? "$here:$ENV{PERL5LIB}" : $here;
}

sub debug { my ($msg, $level) = @_; print STDERR "CondorTest: $msg" if $debug; }

sub _register { my ($what, $name, $sub) = @_; $callbacks{$what} = $sub; }
sub RegisterExitedSuccess { _register('success', @_); }
sub RegisterExitedFailure { _register('failure', @_); }
sub RegisterExitedAbnormal { _register('abnormal', @_); }
sub RegisterExecute { _register('execute', @_); }
sub RegisterSubmit { _register('submit', @_); }
sub RegisterAbort { _register('abort', @_); }
sub RegisterHold { _register('hold', @_); }
sub RegisterEvictedWithoutCheckpoint { _register('evicted', @_); }
sub RegisterEvictedWithCheckpoint { _register('evicted', @_); }
sub RegisterEvicted { _register('evicted', @_); }
sub RegisterRelease { _register('release', @_); }
sub RegisterTimed { }
sub RemoveTimed { }
# the suite's bookkeeping: nothing to record here
sub RegisterResult { my ($result) = @_; return $result; }
sub EndTest { exit(0); }
sub verbose_system { my ($cmd) = @_; return system($cmd) >> 8; }

# RunDagTest(name, dag, wants_checkpoint, dagman_args), or HTCondor's five-argument form
# (name, dag, wants_checkpoint, cluster_id_callback, dagman_args); dag may be a list of files
sub RunDagTest {
    my ($name, $dag, $wants_checkpoint, @rest) = @_;
    my $dagman_args = @rest >= 2 ? $rest[1] : $rest[0];
    my @dags = ref($dag) eq 'ARRAY' ? @$dag : ($dag);
    $dag = $dags[0];
    my @submit = split(/\x1f/, $ENV{BGRID_SUBMIT} // die "BGRID_SUBMIT is not set\n");
    my @args = defined $dagman_args ? split(' ', $dagman_args) : ();
    my %info = (cluster => 1, proc => 0, name => $name, log => "$dag.dagman.log");
    $callbacks{submit}->(%info) if $callbacks{submit};
    $callbacks{execute}->(%info) if $callbacks{execute};
    print STDERR "CondorTest: running @submit $dag @args\n";
    my $rc = system(@submit, @dags, @args);
    if ($rc == -1) { die "CondorTest: cannot run @submit: $!\n"; }
    if ($rc & 127) {
        $info{signal} = $rc & 127;
        if ($callbacks{abnormal}) { $callbacks{abnormal}->(%info); return 1; }
        return 0;
    }
    my $code = $rc >> 8;
    $info{retval} = $code;
    print STDERR "CondorTest: $dag exited with $code\n";
    if ($code == 0) {
        $callbacks{success}->(%info) if $callbacks{success};
        return 1;
    }
    if ($callbacks{failure}) { $callbacks{failure}->(%info); return 1; }
    return 0;
}

1;
