namespace KtConnect.Engine.Net;

/// <summary>What the stack dropped or did, for diagnostics and tests. Updated with Interlocked.</summary>
public sealed class NetCounters
{
    public long PacketsIn;
    public long PacketsOut;
    public long Malformed;
    /// <summary>Fragments received (IPv4 fragments and IPv6 packets with a fragment header).</summary>
    public long Fragments;
    public long FragmentsReassembled;
    /// <summary>Malformed fragments, or fragments over the reassembler's memory bounds.</summary>
    public long FragmentsDropped;
    /// <summary>Fragments that overlapped another one (their whole datagram was discarded).</summary>
    public long FragmentsOverlapping;
    public long FragmentsDuplicate;
    /// <summary>Incomplete datagrams discarded at their timeout.</summary>
    public long FragmentsTimedOut;
    public long UnsupportedProtocol;
    public long NotForUs;
    public long TcpResetsSent;
    public long TcpFlowsAccepted;
    public long TcpFlowsRefused;
    public long TcpFlowsRejectedByLimit;
    public long TcpRetransmits;
    public long TcpFastRetransmits;
    public long TcpOutOfOrderDropped;
    public long UdpToHandler;
    public long IcmpUnreachableSent;
    public long IcmpIgnored;
    /// <summary>Runs of the stack's timer; they stop while no flow has a timer armed.</summary>
    public long TimerTicks;

    public override string ToString() =>
        $"in={PacketsIn} out={PacketsOut} malformed={Malformed} fragments={Fragments} reassembled={FragmentsReassembled} rst={TcpResetsSent} " +
        $"accepted={TcpFlowsAccepted} refused={TcpFlowsRefused} limited={TcpFlowsRejectedByLimit} rexmit={TcpRetransmits} " +
        $"fastrexmit={TcpFastRetransmits} udp={UdpToHandler} icmpUnreach={IcmpUnreachableSent}";
}
